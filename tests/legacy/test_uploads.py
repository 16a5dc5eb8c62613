"""`GET /inference/generate-s3-presigned-url-for-uploading` in compat mode (issue 13): a PUT URL only for an
upload still awaited, never over a file that exists (strict mode adds ownership: test_strict.py)."""

from __future__ import annotations

import json

from tests.checkpoints.conftest import put_part
from tests.legacy.conftest import legacy_create, set_endpoint_status
from tests.support.model_files import model_file_bytes

PRESIGN = "/inference/generate-s3-presigned-url-for-uploading"


def sign(client, key: str):
    return client.get(PRESIGN, params={"key": key})


def test_a_completed_checkpoints_file_cannot_be_replaced(legacy):
    weights = model_file_bytes(salt="done")
    files = [{"filename": "done.safetensors", "parts_number": 1}]
    created = legacy.post(
        "/checkpoint", json={"checkpoint_type": "Stable-diffusion", "params": {}, "filenames": files}
    ).json()
    checkpoint_id = created["checkpoint"]["id"]
    key = f"Stable-diffusion/checkpoint/custom/{checkpoint_id}/done.safetensors"
    etag = put_part(legacy, created["s3PresignUrl"]["done.safetensors"][0], weights).headers["ETag"]
    done = legacy.put(
        "/checkpoint",
        json={
            "checkpoint_id": checkpoint_id,
            "status": "Active",
            "multi_parts_tags": {"done.safetensors": [{"ETag": etag, "PartNumber": 1}]},
        },
    ).json()
    assert done["statusCode"] == 200, done
    refused = sign(legacy, key)
    assert (refused.status_code, refused.json()) == (
        400,
        {"detail": f"checkpoint {checkpoint_id} is Active: its files can no longer be uploaded"},
    )
    assert legacy.http.app.state.store.get_bytes(key) == weights


def test_keys_of_no_awaited_upload_are_refused(legacy):
    for key in (
        "anything.bin",
        "out/x/result/image_0.png",
        "txt2img/infer_v2/nope/api_param.json",
        "Lora/checkpoint/custom/nope/a.safetensors",
        "dataset/nope/a.png",
        "config/other.json",
    ):
        response = sign(legacy, key)
        assert response.status_code == 400, key
        assert response.json()["detail"].startswith(
            f"key {key} is not an upload awaited from you: a signed PUT URL is given only for the api_param.json"
        ), key


def test_a_jobs_payload_is_signed_until_the_job_starts(legacy):
    name = legacy_create(legacy)["data"]["endpoint_name"]
    set_endpoint_status(legacy, name, "InService")
    job = legacy.post(
        "/inference/v2", json={"task_type": "rembg", "models": {}, "sagemaker_endpoint_name": name, "filters": {}}
    ).json()["inference"]
    key = f"rembg/infer_v2/{job['id']}/api_param.json"
    assert sign(legacy, f"txt2img/infer_v2/{job['id']}/api_param.json").status_code == 400  # not its task type
    for _ in range(2):  # a client may upload its payload again before the start
        assert put_part(legacy, sign(legacy, key).json(), json.dumps({"n": 1}).encode()).status_code == 200
    assert legacy.put(f"/inference/v2/{job['id']}/run").json()["statusCode"] == 200
    refused = sign(legacy, key)
    assert (refused.status_code, refused.json()) == (
        400,
        {
            "detail": f"inference job {job['id']} has started (status inprogress): its api_param.json can no longer be "
            "uploaded"
        },
    )


def test_a_dataset_file_is_signed_until_it_is_uploaded(legacy):
    created = legacy.post(
        "/dataset", json={"dataset_name": "faces", "content": [{"filename": "a.png", "name": "a", "type": "image"}]}
    ).json()
    assert created["statusCode"] == 200, created
    assert put_part(legacy, sign(legacy, "dataset/faces/a.png").json(), b"\x89PNG").status_code == 200
    assert sign(legacy, "dataset/faces/a.png").json() == {
        "detail": "dataset faces already has the file dataset/faces/a.png: an uploaded file cannot be replaced"
    }
    assert legacy.put("/dataset", json={"dataset_name": "faces", "status": "Enabled"}).json()["statusCode"] == 200
    assert sign(legacy, "dataset/faces/a.png").json() == {
        "detail": "dataset faces is Enabled: its files can no longer be uploaded"
    }
