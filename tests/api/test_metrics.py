"""`/metrics`: Prometheus text without an API key, counting what users did, labelled by route template."""

from __future__ import annotations

import json

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.checkpoints.conftest import put_part
from tests.support.esd_jobs import endpoint_body
from tests.support.no_worker_engine import without_workers

ENDPOINT = "esd-async-test"


def scrape(esd) -> dict[tuple[str, frozenset], float]:
    answer = esd.http.get("/metrics")  # no x-api-key: outside the ESD surface, like /healthz
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@pytest.fixture
def esd(make_client):
    client = make_client()
    client.engine = without_workers(client, ready=True)  # the test plays the worker through the reporter
    answer = client.post("/prod/endpoints", user="api", json=endpoint_body(endpoint_name="test"))
    assert answer.status_code == 202, answer.json()
    return client


def start_job(esd) -> str:
    answer = esd.post(
        "/prod/inferences",
        user="api",
        json={
            "task_type": "rembg",
            "inference_type": "Async",
            "models": {},
            "sagemaker_endpoint_name": ENDPOINT,
            "payload_string": json.dumps({"image": "aGk=", "model": "u2net"}),
        },
    )
    assert answer.status_code in (201, 202), answer.json()
    inference = answer.json()["data"]["inference"]
    return inference.get("id") or inference["inference_id"]


def test_a_finished_job_shows_in_counts_durations_and_model_loads(esd):
    finished, waiting = start_job(esd), start_job(esd)
    endpoint_id = esd.engine.deployed[0].id
    esd.engine.reporter.instances_changed(endpoint_id, 1)
    esd.engine.reporter.job_started(finished, 0)
    esd.engine.reporter.job_succeeded(finished, {"images": [b"\x89PNG"], "worker": {"model_loads": 1, "cache_hits": 2}})
    samples = scrape(esd)
    assert value(samples, "openesd_inference_jobs", endpoint=ENDPOINT, status="succeed") == 1
    assert value(samples, "openesd_inference_jobs", endpoint=ENDPOINT, status="inprogress") == 1
    assert value(samples, "openesd_inference_queue_length", endpoint=ENDPOINT) == 1  # `waiting`: no worker yet
    assert value(samples, "openesd_inference_job_duration_seconds_count", endpoint=ENDPOINT, status="succeed") == 1
    assert value(samples, "openesd_model_loads_total", endpoint=ENDPOINT) == 1
    assert value(samples, "openesd_model_cache_hits_total", endpoint=ENDPOINT) == 2
    assert value(samples, "openesd_endpoint_instances", endpoint=ENDPOINT, state="InService") == 1
    esd.engine.reporter.job_failed(waiting, "the worker failed")
    samples = scrape(esd)
    assert value(samples, "openesd_inference_jobs", endpoint=ENDPOINT, status="failed") == 1
    assert value(samples, "openesd_inference_queue_length", endpoint=ENDPOINT) == 0
    assert value(samples, "openesd_inference_job_duration_seconds_count", endpoint=ENDPOINT, status="failed") == 1


def test_requests_are_counted_by_route_template_and_uploads_by_bytes(esd):
    created = esd.post(
        "/prod/checkpoints",
        user="api",
        json={
            "checkpoint_type": "Lora",
            "params": {"message": "m"},
            "filenames": [{"filename": "l.safetensors", "parts_number": 2}],
        },
    )
    assert created.status_code == 201, created.json()
    for url, data in zip(created.json()["data"]["s3PresignUrl"]["l.safetensors"], (b"a" * 1000, b"b" * 234)):
        assert put_part(esd, url, data).status_code == 200
    tampered = created.json()["data"]["s3PresignUrl"]["l.safetensors"][0].replace("signature=", "signature=0")
    assert put_part(esd, tampered, b"c" * 50).status_code == 403
    assert esd.get("/prod/no-such-route/12345", user="api").status_code == 403
    assert esd.get("/checkpoints", user="api").status_code == 200
    samples = scrape(esd)
    assert value(samples, "openesd_upload_bytes_total", kind="part") == 1234  # the refused PUT counts nothing
    assert value(samples, "openesd_http_requests_total", method="POST", route="/prod/checkpoints", status="201") == 1
    assert value(samples, "openesd_http_requests_total", method="PUT", route="/objects/{key:path}", status="200") == 2
    assert value(samples, "openesd_http_requests_total", method="PUT", route="/objects/{key:path}", status="403") == 1
    assert value(samples, "openesd_http_requests_total", method="POST", route="/prod/endpoints", status="202") == 1
    assert value(samples, "openesd_http_requests_total", method="GET", route="<unmatched>", status="403") == 1
    assert value(samples, "openesd_http_requests_total", method="GET", route="/checkpoints", status="200") == 1
    assert value(samples, "openesd_http_requests_total", method="GET", route="/prod/checkpoints", status="200") is None
    assert not [labels for _, labels in samples if any("12345" in v for _, v in labels)]  # raw paths never label


def test_metrics_are_outside_the_esd_surface(esd):
    assert esd.get("/prod/metrics", key=None).json() == {"message": "Missing Authentication Token"}
    assert "openesd_http_requests_total" in esd.http.get("/metrics").text
