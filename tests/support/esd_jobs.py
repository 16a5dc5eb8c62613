"""Helpers for endpoint and inference tests: create endpoints, wait for states, run jobs, read results."""

from __future__ import annotations

import io
import json
import time

from tests.checkpoints.conftest import get_url, put_part

ENDPOINT_WAIT_S = 240
JOB_WAIT_S = 240


def endpoint_body(**overrides) -> dict:
    body = {
        "endpoint_type": "Async",
        "instance_type": "cpu",
        "initial_instance_count": 1,
        "autoscaling_enabled": False,
        "assign_to_roles": ["IT Operator"],
        "creator": "api",
    }
    body.update(overrides)
    return body


def find_endpoint(esd, name: str) -> dict | None:
    listed = esd.get("/prod/endpoints", user="api", params={"limit": 100}).json()["data"]["endpoints"]
    return next((e for e in listed if e["endpoint_name"] == name), None)


def wait_endpoint(esd, name: str, until, timeout: float = ENDPOINT_WAIT_S) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        endpoint = find_endpoint(esd, name)
        if endpoint is not None and until(endpoint):
            return endpoint
        assert time.monotonic() < deadline, f"endpoint {name} never got there: {endpoint}"
        time.sleep(0.2)


def create_endpoint(esd, **overrides) -> dict:
    created = esd.post("/prod/endpoints", user="api", json=endpoint_body(**overrides))
    assert created.status_code == 202, created.json()
    name = created.json()["data"]["endpoint_name"]
    return wait_endpoint(esd, name, lambda e: e["endpoint_status"] != "Creating")


def create_job(
    esd,
    task: str,
    endpoint: str,
    payload: dict | None = None,
    models: dict | None = None,
    inference_type: str = "Async",
    one_call: bool = False,
):
    body = {
        "task_type": task,
        "inference_type": inference_type,
        "models": models or {},
        "sagemaker_endpoint_name": endpoint,
    }
    if one_call:
        body["payload_string"] = json.dumps(payload)
    return esd.post("/prod/inferences", user="api", json=body)


def run_two_step(
    esd, task: str, endpoint: str, payload: dict, models: dict | None = None, inference_type: str = "Async"
):
    """Create, upload the payload to the signed URL, start; the start response."""
    created = create_job(esd, task, endpoint, payload, models, inference_type)
    assert created.status_code == 201, created.json()
    job = created.json()["data"]["inference"]
    uploaded = put_part(esd, job["api_params_s3_upload_url"], json.dumps(payload).encode())
    assert uploaded.status_code == 200, uploaded.text
    return job["id"], esd.put(f"/prod/inferences/{job['id']}/start", user="api")


def wait_job(esd, job_id: str, timeout: float = JOB_WAIT_S) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        data = esd.get(f"/prod/inferences/{job_id}").json()["data"]
        if data["status"] in ("succeed", "failed", "cancelled"):
            return data
        assert time.monotonic() < deadline, f"job {job_id} is still {data['status']}: {data}"
        time.sleep(0.2)


def images(esd, job: dict) -> list:
    from PIL import Image

    found = []
    for url in job["img_presigned_urls"]:
        response = get_url(esd, url)
        assert response.status_code == 200, response.text
        image = Image.open(io.BytesIO(response.content))
        assert image.format == "PNG"
        found.append(image)
    return found
