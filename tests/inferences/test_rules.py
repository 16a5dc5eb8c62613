"""The rules and messages of esd-api.md §8 on both databases, with an engine that runs nothing: the tests
report what a worker would, through the real reporter (result processing §8.6 included)."""

from __future__ import annotations

import json

import pytest

from tests.api.test_roles import make_role, make_user
from tests.checkpoints.conftest import get_url, upload_file
from tests.support.esd_jobs import endpoint_body
from tests.support.model_files import model_file_bytes
from tests.support.tiny_extras import sample_image

SD = {"Stable-diffusion": ["m.safetensors"], "VAE": ["Automatic"], "embeddings": []}


def png(width: int = 8, height: int = 8) -> bytes:
    import io

    buffer = io.BytesIO()
    sample_image(width, height).save(buffer, format="PNG")
    return buffer.getvalue()


def endpoint(esd, name: str = "test", **overrides) -> dict:
    answer = esd.post("/prod/endpoints", user="api", json=endpoint_body(endpoint_name=name, **overrides))
    assert answer.status_code == 202, answer.json()
    return answer.json()["data"]


def create(esd, task: str = "txt2img", user: str | None = "api", **body):
    sent = {"task_type": task, "inference_type": "Async", "models": SD} | body
    return esd.post("/prod/inferences", user=user, json=sent)


def created(esd, task: str = "txt2img", **body) -> str:
    answer = create(esd, task, **body)
    assert answer.status_code in (201, 202), answer.json()
    data = answer.json()["data"]["inference"]
    return data.get("id") or data["inference_id"]


def message(answer) -> str:
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text)
    return answer.json()["message"]


@pytest.fixture
def esd(ready):
    upload_file(ready, "m.safetensors", model_file_bytes(), 1, "Stable-diffusion")
    upload_file(ready, "l.safetensors", model_file_bytes("lora"), 1, "Lora")
    endpoint(ready)
    return ready


def test_payload_string_is_checked_first(esd):
    answer = create(esd, user=None, task="nonsense", payload_string="{not json")
    assert answer.json() == {"statusCode": 400, "message": "payload_string must be valid json string"}
    assert create(esd, payload_string='{"cfg_scale": Infinity}').status_code == 202


def test_identity_permission_and_task_type(esd):
    assert create(esd, user=None).json() == {"statusCode": 401, "message": "Unauthorized"}
    make_role(esd, "lookers", ["inference:list"])
    make_user(esd, "lou", ["lookers"])
    assert message(create(esd, user="lou")) == "User lou has no permissions: ['inference:all', 'inference:create']"
    assert message(create(esd, "upscale")) == (
        "task type upscale should be in ['extra-single-image', 'extra-batch-images', 'rembg'] or ['txt2img', 'img2img']"
    )


def test_gateway_validation(esd):
    answer = esd.post("/prod/inferences", user="api", json={"bad_param": 1})
    assert message(answer) == '[object has missing required properties (["inference_type","models","task_type"])]'
    bad_embeddings = create(esd, models={"embeddings": "x"})
    assert message(bad_embeddings) == (
        '[instance type (string) does not match any allowed primitive type (allowed: ["array"])]'
    )


def test_scheduling_by_name(esd):
    assert message(create(esd, sagemaker_endpoint_name="esd-async-nope")) == (
        "sagemaker endpoint with name esd-async-nope is not found"
    )
    esd.engine.ready = False
    endpoint(esd, "slow", assign_to_roles=["slow"])
    assert message(create(esd, sagemaker_endpoint_name="esd-async-slow")) == (
        "sagemaker endpoint is not ready with status: Creating"
    )


def test_scheduling_among_the_requesters_endpoints(esd):
    make_role(esd, "painters", ["inference:all"])
    make_user(esd, "pat", ["painters"])
    assert message(create(esd, user="pat")) == 'no available Async endpoints for user "pat"'
    assert message(create(esd, inference_type="Real-time")) == 'no available Real-time endpoints for user "api"'
    assert message(create(esd, inference_type="Serverless")) == 'no available Serverless endpoints for user "api"'
    endpoint(esd, "pat", assign_to_roles=["pat"])
    job = esd.get(f"/prod/inferences/{created(esd, user='pat')}").json()["data"]
    assert job["params"]["sagemaker_inference_endpoint_name"] == "esd-async-pat"
    assert job["owner_group_or_role"] == ["pat"]


def test_models_resolve_to_active_checkpoints_of_their_type(esd):
    answer = create(esd, models={"Stable-diffusion": ["m.safetensors"], "VAE": ["None"], "Lora": ["l.safetensors"]})
    assert answer.status_code == 201, answer.json()
    assert answer.json()["data"]["inference"]["models"][1:] == [
        {"id": "VAE", "name": ["None"], "type": "VAE"},
        {"id": answer.json()["data"]["inference"]["models"][2]["id"], "name": ["l.safetensors"], "type": "Lora"},
    ]
    esd.post(
        "/prod/checkpoints",
        user="api",
        json={  # an upload never completed stays Initial
            "checkpoint_type": "Lora",
            "params": {},
            "filenames": [{"filename": "half.safetensors", "parts_number": 1}],
        },
    )
    wrong = create(esd, models={"Lora": ["m.safetensors", "half.safetensors"]})
    assert message(wrong) == (
        "checkpoint with name m.safetensors, type Lora is not found "
        "checkpoint with name half.safetensors, type Lora is not found"
    )
    assert message(create(esd, models={"Stable-diffusion": 5})) == (
        "models.Stable-diffusion must be a list of file names, got 5"
    )
    extras = create(esd, "rembg", models={"Stable-diffusion": ["nothing-like-it"]})  # extras ignore models
    assert extras.status_code == 201 and "models" not in extras.json()["data"]["inference"]


def test_a_diffusion_job_gets_every_annotator_and_detector_unless_it_names_some(esd):
    from tests.support.model_files import torch_file_bytes

    for name in ("table5_pidinet.pth", "sk_model.pth"):
        upload_file(esd, name, torch_file_bytes({f"{name}.weight": [2, 2]}), 1, "ControlNet-annotator")
    upload_file(esd, "face_yolov8n.onnx", b"\x08\x07onnx bytes", 1, "ADetailer")

    def used(models: dict) -> dict:
        job = esd.get(f"/prod/inferences/{created(esd, models=models)}").json()["data"]
        return {
            kind: sorted(m["model_name"] for m in entries) for kind, entries in job["params"]["used_models"].items()
        }

    every = used(SD)
    assert every["ControlNet-annotator"] == ["sk_model.pth", "table5_pidinet.pth"]
    assert every["ADetailer"] == ["face_yolov8n.onnx"]
    assert used(SD | {"ControlNet-annotator": ["sk_model.pth"]})["ControlNet-annotator"] == ["sk_model.pth"]
    extras = esd.get(f"/prod/inferences/{created(esd, 'rembg')}").json()["data"]["params"]["used_models"]
    assert "ControlNet-annotator" not in extras and "ADetailer" not in extras


def test_two_step_job_is_stored_created_with_its_parameters(esd):
    job_id = created(esd)
    job = esd.get(f"/prod/inferences/{job_id}").json()["data"]
    assert job["status"] == "created" and job["taskType"] == "txt2img" and job["inference_type"] == "Async"
    assert job["img_presigned_urls"] == [] and len(job["output_presigned_urls"]) == 1
    assert f"out/{job_id}/result/{job_id}_param.json" in job["output_presigned_urls"][0]
    params = job["params"]
    assert params["input_body_s3"].endswith(f"txt2img/infer_v2/{job_id}/api_param.json")
    assert params["used_models"]["Stable-diffusion"][0]["model_name"] == "m.safetensors"
    assert params["used_models"]["VAE"] == [{"id": "VAE", "model_name": "Automatic", "s3": "None", "type": "VAE"}]
    assert "image_names" not in job and "completeTime" not in job  # absent until success


def test_async_start_queues_the_job(esd):
    job_id = created(esd)
    make_role(esd, "creators", ["inference:create"])
    make_user(esd, "cat", ["creators"])
    refused = esd.put(f"/prod/inferences/{job_id}/start", user="cat")
    assert message(refused) == "User cat has no permissions: ['inference:all']"
    assert message(esd.put("/prod/inferences/nope/start", user="api")) == "InferenceJobId nope not found"
    started = esd.put(f"/prod/inferences/{job_id}/start", user="api")
    assert started.status_code == 202
    data = started.json()["data"]["inference"]
    assert (data["inference_id"], data["status"], data["endpoint_name"]) == (job_id, "inprogress", "esd-async-test")
    assert data["output_path"].endswith(".out") and "sagemaker_output/" in data["output_path"]
    assert [job.id for job in esd.engine.submitted] == [job_id]
    assert esd.engine.submitted[0].models["Stable-diffusion"][0]["model_name"] == "m.safetensors"
    job = esd.get(f"/prod/inferences/{job_id}").json()["data"]
    assert job["status"] == "inprogress" and job["params"]["output_path"] == data["output_path"]
    assert job["progress"] == {
        "phase": "queued",
        "step": 0,
        "total_steps": None,
        "eta_seconds": None,
        "queue_position": 1,  # next on its endpoint's queue
        "instances": 0,
    }


def test_results_are_stored_as_esd_stores_them(esd):
    job_id = created(esd, payload_string="{}")
    esd.engine.reporter.job_started(job_id, 0)
    esd.engine.reporter.job_progress(job_id, 1, 4)
    progress = esd.get(f"/prod/inferences/{job_id}").json()["data"]["progress"]
    assert (progress["phase"], progress["step"], progress["total_steps"]) == ("sampling", 1, 4)
    images = [png(8, 8), png(16, 8)]
    esd.engine.reporter.job_succeeded(
        job_id, {"images": images, "parameters": {"prompt": "fox"}, "info": '{"seed": 1}', "html_info": None}
    )
    job = esd.get(f"/prod/inferences/{job_id}").json()["data"]
    assert job["status"] == "succeed" and "progress" not in job
    assert job["image_names"] == ["image_0.png", "image_1.png"]
    assert job["inference_info_name"] == f"/tmp/{job_id}_param.json" and job["completeTime"]
    assert [get_url(esd, url).content for url in job["img_presigned_urls"]] == images
    assert f"out/{job_id}/result/image_1.png" in job["img_presigned_urls"][1]
    assert json.loads(get_url(esd, job["output_presigned_urls"][0]).content) == {
        "parameters": {"prompt": "fox"},
        "info": '{"seed": 1}',
        "endpoint_name": "esd-async-test",
        "inference_id": job_id,
    }


def test_single_image_tasks_store_image_png_or_fail_without_one(esd):
    job_id = created(esd, "rembg", payload_string="{}")
    esd.engine.reporter.job_succeeded(job_id, {"images": [png()], "parameters": None, "info": None, "html_info": None})
    job = esd.get(f"/prod/inferences/{job_id}").json()["data"]
    assert job["image_names"] == ["image.png"]
    assert json.loads(get_url(esd, job["output_presigned_urls"][0]).content) == {
        "endpoint_name": "esd-async-test",
        "inference_id": job_id,
    }
    empty = created(esd, "extra-single-image", payload_string="{}")
    esd.engine.reporter.job_succeeded(empty, {"images": [], "html_info": "<p>"})
    failed = esd.get(f"/prod/inferences/{empty}").json()["data"]
    assert failed["status"] == "failed" and failed["img_presigned_urls"] == []
    assert failed["sagemakerRaw"] == "storing the results failed: the worker returned no image for extra-single-image"


def test_real_time_start_times_out_with_504_and_the_job_goes_on(esd):
    endpoint(esd, "rt", endpoint_type="Real-time", assign_to_roles=["rt"])
    answer = create(esd, inference_type="Real-time", sagemaker_endpoint_name="esd-real-time-rt", payload_string="{}")
    assert answer.status_code == 504 and answer.json() == {"message": "Endpoint request timed out"}
    job_id = esd.engine.submitted[-1].id
    assert esd.get(f"/prod/inferences/{job_id}").json()["data"]["status"] == "created"
    esd.engine.reporter.job_succeeded(job_id, {"images": [png()]})
    job = esd.get(f"/prod/inferences/{job_id}").json()["data"]
    assert job["status"] == "succeed" and len(job["img_presigned_urls"]) == 1


def test_real_time_failure_answers_400_with_the_workers_message(esd):
    endpoint(esd, "rt", endpoint_type="Real-time", assign_to_roles=["rt"])
    job_id = created(esd, inference_type="Real-time", sagemaker_endpoint_name="esd-real-time-rt")
    esd.engine.submit = lambda job: esd.engine.reporter.job_failed(job.id, "sampler 'X' is unknown")
    answer = esd.put(f"/prod/inferences/{job_id}/start", user="api")
    assert answer.json() == {"statusCode": 400, "message": "sampler 'X' is unknown"}
    assert esd.get(f"/prod/inferences/{job_id}").json()["data"]["sagemakerRaw"] == "sampler 'X' is unknown"


def test_unknown_job_is_404(esd):
    assert esd.get("/prod/inferences/nope").json() == {"statusCode": 404, "message": "inference with id nope not found"}


def test_listing_filters_by_type_and_owner_and_pages(esd):
    make_role(esd, "painters", ["inference:all"])
    make_user(esd, "pat", ["painters"])
    endpoint(esd, "pat", assign_to_roles=["pat"])
    mine = [created(esd) for _ in range(3)]
    pats = created(esd, user="pat")
    rembg = created(esd, "rembg")

    def ids(**params) -> list[str]:
        answer = esd.get("/prod/inferences", params={"limit": 100, **params})
        assert answer.status_code == 200, answer.json()
        return [j["InferenceJobId"] for j in answer.json()["data"]["inferences"]]

    assert ids() == [pats, *reversed(mine)]  # txt2img by default, newest first
    assert ids(type="rembg") == [rembg]
    assert ids(username="pat") == [pats]
    assert message(esd.get("/prod/inferences", params={"username": "ghost"})) == 'user: "ghost" not exist'
    first = esd.get("/prod/inferences", params={"limit": 2}).json()["data"]
    second = esd.get("/prod/inferences", params={"limit": 2, "exclusive_start_key": first["last_evaluated_key"]})
    assert [j["InferenceJobId"] for j in first["inferences"] + second.json()["data"]["inferences"]] == ids()
    assert second.json()["data"]["last_evaluated_key"] is None
    item = first["inferences"][0]
    assert item["image_names"] is None and item["sagemakerRaw"] is None  # every field, null when unknown


def test_delete_removes_the_job_its_payload_and_its_results(esd):
    assert message(esd.delete("/prod/inferences", json={})) == (
        '[object has missing required properties (["inference_id_list"])]'
    )
    job_id = created(esd, payload_string="{}")
    esd.engine.reporter.job_succeeded(job_id, {"images": [png()]})
    url = esd.get(f"/prod/inferences/{job_id}").json()["data"]["img_presigned_urls"][0]
    answer = esd.delete("/prod/inferences", json={"inference_id_list": [job_id, job_id, "unknown"]})
    assert answer.status_code == 204 and answer.content == b""
    assert esd.get(f"/prod/inferences/{job_id}").status_code == 404
    assert get_url(esd, url).status_code == 404
    esd.engine.reporter.job_succeeded(job_id, {"images": [png()]})  # a late result of a deleted job is dropped
    assert get_url(esd, url).status_code == 404
