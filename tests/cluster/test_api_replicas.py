"""Two `openesd serve` processes on one PostgreSQL database and one S3 bucket, with the Ray engine on the
session's Ray instance: what one API replica creates, the other starts, watches and downloads."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.api.conftest import API_KEY, ESDClient
from tests.checkpoints.conftest import put_part, upload_file
from tests.support.esd_jobs import create_endpoint, create_job, find_endpoint, images, wait_job
from tests.support.generation_jobs import txt2img_payload
from tests.support.server import ServerProcess

pytestmark = [
    pytest.mark.ray,
    pytest.mark.postgres,
    pytest.mark.s3,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]
SD = {"Stable-diffusion": ["tiny-sd15.safetensors"]}


@pytest.fixture
def replicas(ray_address, postgres_server, s3_endpoint, tmp_path, monkeypatch) -> Iterator[list[ESDClient]]:
    """API replicas A and B: a fresh database and bucket, each its own data directory, one Ray cluster."""
    from tests.cluster.conftest import delete_applications

    database = f"test_{uuid.uuid4().hex[:16]}"
    postgres_server.admin(f'CREATE DATABASE "{database}"')
    monkeypatch.setenv("RAY_ADDRESS", ray_address)  # the servers' `ray.init()` joins the session's instance
    settings = {
        "database_url": postgres_server.url(database),
        "engine_url": "ray",
        "api_keys": API_KEY,
        "object_store_url": f"s3://cluster-{uuid.uuid4().hex[:12]}/objects?create_bucket=true",
        "s3_endpoint_url": s3_endpoint,
        "s3_access_key_id": "test",
        "s3_secret_access_key": "test",
        "s3_region": "us-east-1",
        "endpoint_idle_s": "1.0",
    }
    servers = []  # started one after the other: the second finds the tables the first migrated
    try:
        for name in ("a", "b"):
            servers.append(ServerProcess(tmp_path / name / "data", **settings))
        yield [ESDClient(httpx.Client(base_url=server.base, timeout=120)) for server in servers]
    finally:
        for server in servers:
            server.stop()
        delete_applications()
        postgres_server.admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def test_a_job_created_through_one_replica_is_started_watched_and_downloaded_through_the_other(
    replicas, tiny_checkpoint
):
    a, b = replicas
    upload_file(a, "tiny-sd15.safetensors", tiny_checkpoint, 2, "Stable-diffusion")
    endpoint = create_endpoint(a, endpoint_name="cluster")
    assert endpoint["endpoint_status"] == "InService", endpoint
    assert find_endpoint(b, "esd-async-cluster")["endpoint_status"] == "InService"

    created = create_job(a, "txt2img", "esd-async-cluster", models=SD)
    assert created.status_code == 201, created.json()
    job = created.json()["data"]["inference"]
    payload = json.dumps(txt2img_payload(steps=2, prompt="a fox on two servers")).encode()
    assert put_part(a, job["api_params_s3_upload_url"], payload).status_code == 200
    started = b.put(f"/prod/inferences/{job['id']}/start", user="api")
    assert started.status_code == 202, started.json()

    finished = wait_job(b, job["id"])
    assert finished["status"] == "succeed", finished
    assert [image.size for image in images(b, finished)] == [(64, 64)]
    assert wait_job(a, job["id"])["status"] == "succeed"
