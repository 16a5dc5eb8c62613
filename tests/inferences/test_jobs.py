"""Jobs end to end on real worker processes: every task, both ways of sending the payload, both modes."""

from __future__ import annotations

import json
import threading
import time

import pytest

from tests.checkpoints.conftest import get_url
from tests.support.esd_jobs import create_job, images, run_two_step, wait_job
from tests.support.generation_jobs import txt2img_payload
from tests.support.tiny_extras import sample_image, to_base64

SD = {"Stable-diffusion": ["tiny-sd15.safetensors"], "VAE": ["Automatic"], "embeddings": []}
ASYNC, REALTIME = "esd-async-test", "esd-real-time-test"


def extras_payload() -> dict:
    return {
        "image": to_base64(sample_image(48, 32)),
        "resize_mode": 0,
        "upscaling_resize": 2,
        "upscaler_1": "Lanczos",
        "upscaler_2": "None",
    }


def rembg_payload() -> dict:
    return {"input_image": to_base64(sample_image(48, 32)), "model": "u2net_human_seg"}


def img2img_payload() -> dict:
    return {
        **txt2img_payload(steps=2),
        "init_images": [to_base64(sample_image(64, 64), "PNG")],
        "denoising_strength": 0.75,
    }


def run_one_call(server, task: str, payload: dict, models: dict | None = None) -> dict:
    started = create_job(server, task, ASYNC, payload, models, one_call=True)
    assert started.status_code == 202, started.json()
    assert started.json()["data"]["inference"]["status"] == "inprogress"
    return wait_job(server, started.json()["data"]["inference"]["inference_id"])


def run_both_ways(server, task: str, payload: dict, models: dict | None = None) -> list[dict]:
    job_id, started = run_two_step(server, task, ASYNC, payload, models)
    assert started.status_code == 202, started.json()
    return [wait_job(server, job_id), run_one_call(server, task, payload, models)]


IDS = {"endpoint_name", "inference_id"}


@pytest.mark.parametrize(
    "task, payload, models, size, names, param_keys",
    [  # §14.6
        ("txt2img", txt2img_payload(steps=1), SD, (64, 64), ["image_0.png"], {"parameters", "info", *IDS}),
        ("img2img", img2img_payload(), SD, (64, 64), ["image_0.png"], {"parameters", "info", *IDS}),
        ("extra-single-image", extras_payload(), {}, (96, 64), ["image.png"], {"html_info", *IDS}),
        ("rembg", rembg_payload(), {}, (48, 32), ["image.png"], IDS),
    ],
)
def test_each_task_produces_downloadable_pngs_both_ways(server, task, payload, models, size, names, param_keys):
    for job in run_both_ways(server, task, payload, models):
        assert job["status"] == "succeed", job.get("sagemakerRaw")
        assert job["image_names"] == names
        assert [image.size for image in images(server, job)] == [size]
        info = json.loads(get_url(server, job["output_presigned_urls"][0]).content)
        assert set(info) == param_keys
        assert info["inference_id"] == job["InferenceJobId"] and info["endpoint_name"] == ASYNC
        assert job["inference_info_name"] == f"/tmp/{job['InferenceJobId']}_param.json"
    if task == "rembg":
        assert images(server, job)[0].mode == "RGBA"


def test_two_step_create_answers_the_upload_url_and_resolved_models(server):
    created = create_job(server, "txt2img", ASYNC, models=SD)
    assert created.status_code == 201, created.json()
    inference = created.json()["data"]["inference"]
    assert inference["api_params_s3_location"].endswith(f"txt2img/infer_v2/{inference['id']}/api_param.json")
    assert [(m["type"], m["name"]) for m in inference["models"]] == [
        ("Stable-diffusion", ["tiny-sd15.safetensors"]),
        ("VAE", ["Automatic"]),
    ]
    stored = server.get(f"/prod/inferences/{inference['id']}").json()["data"]
    assert stored["status"] == "created" and stored["img_presigned_urls"] == []


def test_real_time_start_answers_the_finished_job(server):
    answer = create_job(server, "txt2img", REALTIME, txt2img_payload(steps=1), SD, "Real-time", one_call=True)
    assert answer.status_code == 200, answer.json()
    job = answer.json()["data"]
    assert job["status"] == "succeed" and job["inference_type"] == "Real-time"
    assert [image.size for image in images(server, job)] == [(64, 64)]


def test_a_lora_named_in_the_prompt_changes_the_image(server):
    with_lora = {**SD, "Lora": ["tiny-lora.safetensors"]}
    plain = run_one_call(server, "txt2img", txt2img_payload(steps=1), with_lora)
    lora = run_one_call(server, "txt2img", txt2img_payload(steps=1, prompt="a red fox <lora:tiny-lora:1>"), with_lora)
    assert plain["status"] == lora["status"] == "succeed", (plain.get("sagemakerRaw"), lora.get("sagemakerRaw"))
    assert images(server, plain)[0].tobytes() != images(server, lora)[0].tobytes()


def test_a_lora_missing_from_the_models_fails_the_job_naming_it(server):
    job = run_one_call(server, "txt2img", txt2img_payload(steps=1, prompt="fox <lora:absent-lora:1>"), SD)
    assert job["status"] == "failed"
    assert "absent-lora" in job["sagemakerRaw"]
    assert job["img_presigned_urls"] == []


def test_a_payload_the_worker_rejects_fails_with_its_message(server):
    job = run_one_call(server, "txt2img", txt2img_payload(sampler_name="No Such Sampler"), SD)
    assert job["status"] == "failed" and "No Such Sampler" in job["sagemakerRaw"]
    answer = create_job(
        server, "txt2img", REALTIME, txt2img_payload(sampler_name="No Such Sampler"), SD, "Real-time", one_call=True
    )
    assert answer.status_code == 400 and "No Such Sampler" in answer.json()["message"]


def test_a_payload_never_uploaded_fails_the_job_saying_so(server):
    created = create_job(server, "txt2img", ASYNC, models=SD).json()["data"]["inference"]
    server.put(f"/prod/inferences/{created['id']}/start", user="api")
    job = wait_job(server, created["id"])
    assert job["status"] == "failed" and "never uploaded" in job["sagemakerRaw"]


def test_models_that_are_not_active_checkpoints_are_named(server):
    models = {"Stable-diffusion": ["nope.safetensors"], "Lora": ["gone.safetensors"]}
    answer = create_job(server, "txt2img", ASYNC, txt2img_payload(), models)
    assert answer.status_code == 400
    assert answer.json()["message"] == (
        "checkpoint with name nope.safetensors, type Stable-diffusion is not found "
        "checkpoint with name gone.safetensors, type Lora is not found"
    )


def test_ten_concurrent_real_time_starts_all_succeed(server):
    answers = []

    def start():
        answers.append(
            create_job(
                server, "extra-single-image", REALTIME, extras_payload(), inference_type="Real-time", one_call=True
            )
        )

    threads = [threading.Thread(target=start) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [200] * 10, [a.json() for a in answers if a.status_code != 200]
    assert all(a.json()["data"]["status"] == "succeed" for a in answers)


def test_deleting_a_job_deletes_its_results(server):
    job = run_one_call(server, "extra-single-image", extras_payload())
    assert server.delete("/prod/inferences", json={"inference_id_list": [job["InferenceJobId"]]}).status_code == 204
    assert get_url(server, job["img_presigned_urls"][0]).status_code == 404
    assert server.get(f"/prod/inferences/{job['InferenceJobId']}").status_code == 404


def test_listing_shows_jobs_of_the_type_newest_first_with_every_field(server):
    first = run_one_call(server, "rembg", rembg_payload())
    second = run_one_call(server, "rembg", rembg_payload())
    page = server.get("/prod/inferences", params={"type": "rembg", "limit": 1}).json()["data"]
    assert [j["InferenceJobId"] for j in page["inferences"]] == [second["InferenceJobId"]]
    assert page["inferences"][0]["sagemakerRaw"] is None  # every field, null when unknown
    rest = server.get(
        "/prod/inferences", params={"type": "rembg", "limit": 100, "exclusive_start_key": page["last_evaluated_key"]}
    ).json()["data"]
    assert first["InferenceJobId"] in [j["InferenceJobId"] for j in rest["inferences"]]
    assert rest["last_evaluated_key"] is None


def test_a_running_job_cancelled_mid_sampling_stops_and_its_endpoint_runs_the_next(server):
    """Through the API and the real local engine: the cancel route reaches the worker within one model call."""
    payload = txt2img_payload(steps=150, sampler_name="Heun")  # about 300 model calls: still running at the cancel
    started = create_job(server, "txt2img", ASYNC, payload, SD, one_call=True)
    job_id = started.json()["data"]["inference"]["inference_id"]
    deadline = time.monotonic() + 120
    while (progress := server.get(f"/prod/inferences/{job_id}").json()["data"]["progress"])["phase"] != "sampling":
        assert time.monotonic() < deadline, progress
        time.sleep(0.05)
    answer = server.put(f"/prod/inferences/{job_id}/cancel", user="api")
    assert answer.status_code in (200, 202), answer.json()
    ended = wait_job(server, job_id, timeout=60)
    assert (ended["status"], ended["sagemakerRaw"]) == ("cancelled", "cancelled by api")
    assert progress["step"] <= ended["progress"]["step"] < ended["progress"]["total_steps"]
    assert ended["img_presigned_urls"] == []
    assert wait_job(server, run_one_call_id(server))["status"] == "succeed"


def run_one_call_id(server) -> str:
    started = create_job(server, "txt2img", ASYNC, txt2img_payload(steps=1), SD, one_call=True)
    return started.json()["data"]["inference"]["inference_id"]


def test_a_running_job_with_preview_every_serves_its_latest_preview(server):
    """Through the API and the real local engine: `progress.preview_url` serves a JPEG of the prediction while
    the job samples (then the job is cancelled: nothing else to wait for)."""
    import io

    from PIL import Image

    body = {
        "task_type": "txt2img",
        "inference_type": "Async",
        "models": SD,
        "sagemaker_endpoint_name": ASYNC,
        "payload_string": json.dumps(txt2img_payload(steps=150, sampler_name="Heun")),
        "preview_every": 2,
    }
    started = server.post("/prod/inferences", user="api", json=body)
    job_id = started.json()["data"]["inference"]["inference_id"]
    deadline = time.monotonic() + 120
    while "preview_url" not in (progress := server.get(f"/prod/inferences/{job_id}").json()["data"]["progress"]):
        assert time.monotonic() < deadline, progress
        time.sleep(0.05)
    assert progress["preview_step"] % 2 == 0 and progress["preview_step"] <= progress["total_steps"]
    assert Image.open(io.BytesIO(get_url(server, progress["preview_url"]).content)).format == "JPEG"
    server.put(f"/prod/inferences/{job_id}/cancel", user="api")
    assert wait_job(server, job_id, timeout=60)["status"] == "cancelled"
