"""One app with tiny models and two endpoints, shared by the module's tests: worker processes are slow
to start on a CPU, so each module pays for them once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from openesd.server.app import create_app
from tests.api.conftest import ESDClient, esd, make_client, make_settings  # noqa: F401  (shared fixtures)
from tests.checkpoints.conftest import upload_file
from tests.support.esd_jobs import create_endpoint
from tests.support.no_worker_engine import without_workers


def open_app(tmp, **overrides) -> TestClient:
    settings = make_settings(tmp, database_url=f"sqlite:///{tmp / 'openesd.db'}", **overrides)
    client = TestClient(create_app(settings))
    client.__enter__()
    return client


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    from tests.support import tiny_adapters, tiny_extras, tiny_models

    folder = tmp_path_factory.mktemp("tiny-models")
    tiny_models.write_tiny_sd15_checkpoint(folder / "tiny-sd15.safetensors")
    tiny_adapters.write_kohya_lora(folder / "tiny-lora.safetensors", scale=2.0)
    tiny_extras.write_tiny_u2net_onnx(folder / "u2net_human_seg.onnx")
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory, models_dir) -> Iterator[ESDClient]:
    """An app on SQLite with the tiny models uploaded and endpoints `esd-async-test` (1 instance) and
    `esd-real-time-test` (2 instances)."""
    client = open_app(tmp_path_factory.mktemp("server"), endpoint_idle_s=1.0)
    esd_ = ESDClient(client)
    for name, kind in (
        ("tiny-sd15.safetensors", "Stable-diffusion"),
        ("tiny-lora.safetensors", "Lora"),
        ("u2net_human_seg.onnx", "rembg"),
    ):
        upload_file(esd_, name, (models_dir / name).read_bytes(), 2, kind)
    for body in (
        {"endpoint_name": "test"},
        {
            "endpoint_name": "test",
            "endpoint_type": "Real-time",
            "initial_instance_count": 2,
            "assign_to_roles": ["byoc"],
        },
    ):
        assert create_endpoint(esd_, **body)["endpoint_status"] == "InService"
    yield esd_
    client.__exit__(None, None, None)


@pytest.fixture
def ready(make_client) -> ESDClient:
    """An app on each database whose endpoints are InService at once and whose jobs never run by
    themselves: tests play the engine's part through `ready.engine.reporter`."""
    client = make_client(realtime_timeout_s=0.5)
    client.engine = without_workers(client, ready=True)
    return client
