"""The endpoint status machine on the real local engine (esd-api.md §7.5, decisions.md Endpoints):
`Creating` → `InService` once a worker is healthy, `Failed` with `error` when none can start."""

from __future__ import annotations

import re

from tests.endpoints.conftest import create, message
from tests.support.esd_jobs import create_endpoint, wait_endpoint

TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}"


def test_endpoint_goes_in_service_with_its_instances_and_stops_them_when_deleted(make_client):
    esd = make_client()
    answer = create(esd, endpoint_name="test", initial_instance_count=2)
    assert answer.json()["data"]["endpoint_status"] == "Creating"
    endpoint = wait_endpoint(esd, "esd-async-test", lambda e: e["endpoint_status"] != "Creating")
    assert endpoint["endpoint_status"] == "InService", endpoint
    assert re.fullmatch(TIME, endpoint["endTime"]) and endpoint["error"] is None
    endpoint = wait_endpoint(esd, "esd-async-test", lambda e: e["current_instance_count"] == "2")
    engine = esd.http.app.state.runtime.execution
    assert engine.instance_count(endpoint["EndpointDeploymentJobId"]) == 2
    assert esd.delete("/prod/endpoints", json={"endpoint_name_list": ["esd-async-test"]}).status_code == 204
    assert esd.get("/prod/endpoints", user="api").json()["data"]["endpoints"] == []
    assert engine.instance_count(endpoint["EndpointDeploymentJobId"]) == 0


def test_endpoint_whose_workers_cannot_start_is_failed_with_the_reason(make_client):
    esd = make_client(worker_start_timeout_s=0.01, worker_start_attempts=2)
    endpoint = create_endpoint(esd, endpoint_name="broken")
    assert endpoint["endpoint_status"] == "Failed"
    assert endpoint["error"] == "the worker did not load its runtime within 0.01 s"
    assert endpoint["current_instance_count"] == "0" and endpoint["endTime"] is None
    # a failed endpoint still holds its role (only deletion frees it) and takes no jobs
    assert message(create(esd, endpoint_name="again")) == (
        "role [IT Operator] has a valid endpoint already, not allow to have another one"
    )
    job = esd.post(
        "/prod/inferences",
        user="api",
        json={
            "task_type": "rembg",
            "inference_type": "Async",
            "models": {},
            "sagemaker_endpoint_name": "esd-async-broken",
        },
    )
    assert message(job) == "sagemaker endpoint is not ready with status: Failed"
