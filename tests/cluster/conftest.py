"""One local Ray instance (CPU only) for the whole session, and the engine contract suite's
`engine` fixture built on the Ray engine. Skipped where the `cluster` extra is not installed."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator

import pytest

from openesd.execution import open_engine
from tests.conftest import IsolatedSettings
from tests.execution.conftest import (  # noqa: F401  (tiny_checkpoint is a fixture, shared)
    EVENT_WAIT_S,
    FAST,
    MODEL_KEY,
    EngineUnderTest,
    RecordingEvents,
    tiny_checkpoint,
)

RAY_CPUS = 2


@pytest.fixture(scope="session")
def ray_address() -> Iterator[str]:
    """The GCS address of a Ray instance started once for the session; API servers join it through
    RAY_ADDRESS. Serve and Ray are shut down at the end."""
    ray = pytest.importorskip("ray", reason="the `cluster` extra (ray[serve]) is not installed")
    from ray import serve

    ray.init(
        num_cpus=RAY_CPUS,
        include_dashboard=False,
        object_store_memory=200 * 1024**2,
        logging_level="WARNING",
        log_to_driver=False,
    )
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        serve.shutdown()
        ray.shutdown()


def delete_applications() -> None:
    """Engines leave their endpoints running for other API replicas; a test ends by removing them."""
    from ray import serve

    for name in serve.status().applications:
        serve.delete(name)


@pytest.fixture
def engine(ray_address, tmp_path, tiny_checkpoint) -> Iterator[Callable[..., EngineUnderTest]]:
    """`engine(**settings)`: a Ray engine on the session's instance, its object store holding
    the tiny model; closed and its applications deleted after the test."""
    opened = []

    def build(**overrides) -> EngineUnderTest:
        from openesd.storage import open_store

        settings = IsolatedSettings(data_dir=tmp_path / "data", **(FAST | overrides))
        open_store(settings.resolved_object_store_url, settings).put_bytes(MODEL_KEY, tiny_checkpoint)
        events = RecordingEvents()
        engine = open_engine("ray", settings, events.consumers)
        opened.append(engine)
        return EngineUnderTest(engine, events, _ray_killer(engine))

    yield build
    for engine in opened:
        engine.close()
    delete_applications()


def _ray_killer(engine) -> Callable[[str], int]:
    """SIGKILL the replica process running a job (the pid its first message named)."""

    def kill(job_id: str) -> int:
        deadline = time.monotonic() + EVENT_WAIT_S
        while time.monotonic() < deadline:
            with engine._lock:
                job = engine._jobs.get(job_id)
                pid = job.worker_pid if job is not None else None
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
                return pid
            time.sleep(0.02)
        raise AssertionError(f"no replica holds job {job_id}")

    return kill
