"""§4 and §5: connectivity, inference v2 in both forms, the run route and the job views."""

from __future__ import annotations

import json

import pytest

from tests.checkpoints.conftest import put_part, upload_file
from tests.legacy.conftest import legacy_create, set_endpoint_status
from tests.support.model_files import model_file_bytes, torch_file_bytes

SD = {"Stable-diffusion": ["sd.safetensors"], "VAE": ["Automatic"]}


def ready_endpoint(legacy) -> str:
    name = legacy_create(legacy)["data"]["endpoint_name"]
    set_endpoint_status(legacy, name, "InService")
    upload_file(legacy, "sd.safetensors", model_file_bytes(salt="sd"), 1, "Stable-diffusion")
    return name


@pytest.mark.parametrize(
    "path", ["/inference/test-connection", "/prod/inference/test-connection", "/legacy/inference/test-connection"]
)
def test_test_connection_answers_success_on_every_mount_with_the_key(legacy, path):
    response = legacy.get(path, headers={"Content-Type": "text/plain"})
    assert response.status_code == 200 and response.json() == {"message": "Success"}
    assert "x-api-version" not in response.headers
    assert legacy.get(path, key=None).json() == {"message": "Forbidden"}
    assert legacy.get(path, key="wrong").status_code == 403


def test_unmapped_legacy_paths_and_1_5_routes_under_the_legacy_mount_are_missing_tokens(legacy):
    for method, path in (
        ("GET", "/legacy/ping"),
        ("GET", "/checkpoint"),
        ("GET", "/legacy/inference/nothing"),
        ("GET", "/legacy/inferences/x"),
    ):
        response = legacy.call(method, path)
        assert (response.status_code, response.json()) == (403, {"message": "Missing Authentication Token"}), path


def test_prepare_then_upload_then_run_is_visible_through_both_apis(legacy):
    name = ready_endpoint(legacy)
    prepared = legacy.post(
        "/inference/v2",
        json={
            "task_type": "txt2img",
            "models": SD,
            "sagemaker_endpoint_name": name,
            "filters": {"createAt": 1700000000, "creator": "sd-webui"},
            "user_id": "api",
        },
    )
    assert prepared.status_code == 200
    body = prepared.json()
    assert body["statusCode"] == 200
    inference = body["inference"]
    assert inference["type"] == "txt2img" and inference["api_params_s3_location"].endswith(
        f"txt2img/infer_v2/{inference['id']}/api_param.json"
    )
    assert [m["name"] for m in inference["models"]] == [["sd.safetensors"], ["Automatic"]]
    assert (
        put_part(legacy, inference["api_params_s3_upload_url"], json.dumps({"prompt": "x"}).encode()).status_code == 200
    )

    run = legacy.put(f"/legacy/inference/v2/{inference['id']}/run", json={"ignored": True})
    assert run.status_code == 200
    assert run.json()["statusCode"] == 200
    started = run.json()["inference"]
    assert started["inference_id"] == inference["id"] and started["status"] == "inprogress"
    assert started["endpoint_name"] == name and started["output_path"].endswith(".out")
    assert [job.id for job in legacy.engine.submitted] == [inference["id"]]

    job = legacy.get("/inference/get-inference-job", params={"jobID": inference["id"]}).json()
    assert job["InferenceJobId"] == inference["id"] and job["taskType"] == "txt2img"
    assert job["status"] == "inprogress" and job["startTime"]
    assert "img_presigned_urls" not in job and None not in job.values()
    listed = legacy.get("/legacy/inference/list-inference-jobs").json()
    assert [j["InferenceJobId"] for j in listed] == [inference["id"]]
    assert legacy.get("/inference/get-inference-job-image-output", params={"jobID": inference["id"]}).json() == []
    params_url = legacy.get("/inference/get-inference-job-param-output", params={"jobID": inference["id"]}).json()
    assert len(params_url) == 1 and f"out/{inference['id']}/result/{inference['id']}_param.json" in params_url[0]
    modern = legacy.get(f"/prod/inferences/{inference['id']}").json()["data"]
    assert modern["status"] == "inprogress" and modern["taskType"] == "txt2img"


def test_prepare_errors_keep_the_legacy_shapes(legacy):
    name = ready_endpoint(legacy)
    base = {"task_type": "txt2img", "models": SD, "sagemaker_endpoint_name": name, "filters": {}}
    cases = [
        (
            {"task_type": "bogus"},
            400,
            "task type bogus should be in ['extra-single-image', 'extra-batch-images', "
            "'rembg'] or ['txt2img', 'img2img']",
        ),
        ({"sagemaker_endpoint_name": "nope"}, 500, "sagemaker endpoint with name nope is not found"),
        (
            {"models": {"Stable-diffusion": ["a.safetensors", "b.safetensors"]}},
            400,
            [
                "checkpoint with name a.safetensors, type Stable-diffusion is not found",
                "checkpoint with name b.safetensors, type Stable-diffusion is not found",
            ],
        ),
        ({"user_id": "ghost", "sagemaker_endpoint_name": None}, 500, 'user: "ghost" not exist'),
    ]
    for change, status, message in cases:
        response = legacy.post("/prod/inference/v2", json={**base, **change})
        assert response.status_code == 200
        assert response.json() == {"statusCode": status, "errMsg": message}, change
    set_endpoint_status(legacy, name, "Creating")
    response = legacy.post("/prod/inference/v2", json=base).json()
    assert response == {"statusCode": 500, "errMsg": "sagemaker endpoint is not ready with status: Creating"}


def test_prepare_without_endpoint_name_picks_one_of_the_users_endpoints(legacy):
    ready_endpoint(legacy)
    body = legacy.post("/inference/v2", json={"task_type": "rembg", "models": {}, "filters": {}}).json()
    assert body["statusCode"] == 200 and "models" not in body["inference"]


def test_one_call_forms_validate_with_their_own_shapes(legacy):
    missing = "task_type, sagemaker_endpoint_name, models should be in the request body"
    assert legacy.post("/inference-api/inference", json={"prompt": "x"}).json() == {"status": 400, "err": missing}
    assert legacy.post("/inference/v2", json={"prompt": "x"}).json() == {"status": "failed", "error": missing}
    unknown = {"task_type": "txt2img", "models": SD, "sagemaker_endpoint_name": "nope"}
    seed_form = legacy.post("/inference/v2", json=unknown).json()
    assert seed_form == {"status": "failed", "error": "sagemaker endpoint with name nope is not found"}
    alias = legacy.post("/inference-api/inference", json=unknown).json()
    assert alias["status"] == 500 and alias["err"].startswith("fail to prepare inference for ")
    assert alias["err"].endswith("no s3 location is generated: sagemaker endpoint with name nope is not found")


def test_one_call_stores_the_template_merged_payload_and_starts(legacy):
    name = ready_endpoint(legacy)
    body = {"task_type": "txt2img", "models": SD, "sagemaker_endpoint_name": name, "prompt": "a cute panda", "steps": 3}
    answer = legacy.post("/inference-api/inference", json=body).json()
    assert answer["status"] == 200
    inference = answer["inference"]
    assert inference["status"] == "inprogress" and inference["type"] == "txt2img"
    assert inference["endpoint_name"] == name and inference["output_path"].endswith(".out")
    assert inference["models"][0] == {
        "id": inference["models"][0]["id"],
        "name": ["sd.safetensors"],
        "type": "Stable-diffusion",
    }
    spec = legacy.engine.submitted[-1]
    payload = json.loads(legacy.http.app.state.store.get_bytes(spec.param_key))
    assert payload["prompt"] == "a cute panda" and payload["steps"] == 3 and payload["sampler_name"] == "Euler a"
    assert payload["alwayson_scripts"]["controlnet"]["args"][0]["enabled"] is False
    seed_form = legacy.post("/inference/v2", json=body).json()
    assert seed_form["status"] == "inprogress" and seed_form["endpoint_name"] == name
    assert seed_form["inference_id"] == seed_form["inference"]["inference_id"] != inference["inference_id"]


def test_job_view_routes_tolerate_missing_and_unknown_ids(legacy):
    assert legacy.get("/inference/get-inference-job").json() == {"detail": "Inference job id must not be None or empty"}
    assert legacy.get("/inference/get-inference-job").status_code == 500
    unknown = legacy.get("/inference/get-inference-job", params={"jobID": "nope"})
    assert (unknown.status_code, unknown.json()) == (
        500,
        {"detail": "There is no inference job info item for id: nope"},
    )
    for route in ("image", "param"):
        assert legacy.get(f"/inference/get-inference-job-{route}-output").json() == []
        assert legacy.get(f"/inference/get-inference-job-{route}-output", params={"jobID": "nope"}).json() == []
    assert legacy.put("/inference/v2/nope/run").json() == {
        "statusCode": "500",
        "error": "InferenceJobId nope not found",
    }


def test_presigned_upload_url_for_the_deployments_own_store_only(legacy):
    url = legacy.get("/inference/generate-s3-presigned-url-for-uploading", params={"key": "config/aigc.json"}).json()
    assert put_part(legacy, url, b"{}").status_code == 200
    assert legacy.http.app.state.store.get_bytes("config/aigc.json") == b"{}"
    for params, message in (
        ({}, "Key parameter is required"),
        ({"key": "a", "s3_bucket_name": "other"}, "bucket other is not served"),
        ({"key": "../etc/passwd"}, "key ../etc/passwd is not allowed: it must be a relative path without '..'"),
    ):
        response = legacy.get("/inference/generate-s3-presigned-url-for-uploading", params=params)
        assert (response.status_code, response.json()) == (400, {"detail": message})


def test_model_name_lists_show_active_files_of_their_type(legacy):
    upload_file(legacy, "b-lora.safetensors", model_file_bytes("lora", salt="1"), 1, "Lora")
    upload_file(legacy, "a-lora.safetensors", model_file_bytes("lora", salt="2"), 1, "Lora")
    upload_file(legacy, "cartoony.pt", torch_file_bytes({"emb_params": [1, 8]}), 1, "embeddings")
    assert legacy.get("/inference/get-lora-list").json() == ["a-lora.safetensors", "b-lora.safetensors"]
    assert legacy.get("/legacy/inference/get-texual-inversion-list").json() == ["cartoony.pt"]
    assert legacy.get("/inference/get-hypernetwork-list").json() == []
    assert legacy.get("/prod/inference/get-controlnet-model-list").json() == []


def test_settings_turn_the_legacy_layer_or_its_primary_routes_off(make_client):
    off = make_client(legacy_enabled=False)
    for path in ("/prod/inference/test-connection", "/legacy/inference/test-connection"):
        assert off.get(path).json() == {"message": "Missing Authentication Token"}
    legacy_only = make_client(legacy_on_primary_mount=False, legacy_mount="/old/")
    assert legacy_only.get("/prod/inference/test-connection").json() == {"message": "Missing Authentication Token"}
    assert legacy_only.get("/old/inference/test-connection").json() == {"message": "Success"}
    body = {"instance_type": "cpu", "initial_instance_count": "1"}
    assert legacy_only.post("/prod/endpoints", user="api", json=body).status_code == 400  # 1.5.0 validation


def test_requester_defaults_to_the_configured_user_or_is_unauthorized(make_client):
    nobody = make_client(legacy_default_user="")
    response = nobody.get("/legacy/endpoints")
    assert (response.status_code, response.json()) == (401, {"message": "Unauthorized"})
    bad_hex = nobody.get("/legacy/endpoints", headers={"Authorization": "Bearer not-hex"})
    assert (bad_hex.status_code, bad_hex.json()) == (401, {"message": "Unauthorized"})
    assert nobody.get("/legacy/endpoints", user="api").json() == {"statusCode": 200, "endpoints": []}
