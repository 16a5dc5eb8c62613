"""The engine contract suite's fixtures: every engine is driven through `Engine` alone and reports to
recording `EngineConsumers`. Add an engine by adding its name to `ENGINES` and a way to kill a worker."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields

import pytest

from openesd.execution import open_engine
from openesd.execution import events as ev
from openesd.execution.base import EndpointSpec, Engine, JobSpec
from tests.conftest import IsolatedSettings
from tests.support.generation_jobs import txt2img_payload

ENGINES = ["local"]
MODEL_KEY = "Stable-diffusion/checkpoint/custom/tiny/tiny-sd15.safetensors"
EVENT_WAIT_S = 120
# Short periods keep the suite quick; a worker start (imports) takes a few seconds on a small CPU.
FAST = {"endpoint_idle_s": 1.0, "scale_out_backlog": 1.0, "job_deadline_s": 120.0, "worker_start_attempts": 2}


# Each event recorded as (name, *its fields), the name in the reporters' words.
EVENT_NAMES = {
    ev.EndpointReady: "endpoint_ready",
    ev.EndpointFailed: "endpoint_failed",
    ev.InstancesChanged: "instances_changed",
    ev.JobStarted: "job_started",
    ev.JobProgress: "job_progress",
    ev.JobLoading: "job_loading",
    ev.JobSucceeded: "job_succeeded",
    ev.JobFailed: "job_failed",
    ev.JobCancelled: "job_cancelled",
    ev.TrainingStatus: "training_status",
    ev.TrainingProgress: "training_progress",
    ev.TrainingCompleted: "training_completed",
    ev.TrainingFailed: "training_failed",
    ev.TrainingStopped: "training_stopped",
    ev.MergeSucceeded: "merge_succeeded",
    ev.MergeFailed: "merge_failed",
}


def tiny_job(
    endpoint_id: str, job_id: str, steps: int = 1, checkpoint: str = "tiny", preview_every: int = 0, **payload
) -> JobSpec:
    """A txt2img job on the tiny SD 1.5 file (stored at MODEL_KEY) under checkpoint id `checkpoint`: two ids of
    the one file are two models to a worker's cache."""
    entry = {"id": checkpoint, "model_name": "tiny-sd15.safetensors", "key": MODEL_KEY}
    return JobSpec(
        id=job_id,
        endpoint_id=endpoint_id,
        task="txt2img",
        param_key=f"txt2img/infer_v2/{job_id}/x",
        payload_string=json.dumps(txt2img_payload(steps=steps, **payload)),
        models={"Stable-diffusion": [entry]},  # type: ignore[typeddict-item]
        preview_every=preview_every,
    )


class RecordingEvents:
    """The endpoint, job, training and merge consumers in one, keeping every event in order, for tests to wait on
    and read."""

    def __init__(self):
        self.calls: list[tuple] = []
        self._changed = threading.Condition()

    @property
    def consumers(self) -> ev.EngineConsumers:
        return ev.EngineConsumers(endpoints=self, jobs=self, trainings=self, merges=self)

    def record(self, event) -> None:
        values = [getattr(event, f.name) for f in fields(event)]
        if isinstance(event, ev.JobProgress) and event.preview is None:
            values = values[:-1]  # a plain progress report reads (job, step, total), as before live previews
        with self._changed:
            self.calls.append((EVENT_NAMES[type(event)], *values))
            self._changed.notify_all()

    on_endpoint = on_job = on_training = on_merge = record

    def of(self, name: str, subject: str | None = None) -> list[tuple]:
        """The calls of one kind, for one endpoint or job when `subject` is given (arguments only)."""
        with self._changed:
            return [c[1:] for c in self.calls if c[0] == name and (subject is None or c[1] == subject)]

    def wait_for(
        self, name: str, subject: str, until: Callable[[list[tuple]], bool] = bool, timeout: float = EVENT_WAIT_S
    ) -> list[tuple]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not until(found := [c[1:] for c in self.calls if c[0] == name and c[1] == subject]):
                left = deadline - time.monotonic()
                assert left > 0, f"no {name} for {subject} within {timeout} s; calls: {self.calls}"
                self._changed.wait(left)
        return found

    def finished(self, job_id: str) -> tuple:
        """The one terminal event of a job: ("job_succeeded", id, result), ("job_failed", id, message) or
        ("job_cancelled", id, step)."""
        deadline = time.monotonic() + EVENT_WAIT_S
        ending = ("job_succeeded", "job_failed", "job_cancelled")
        with self._changed:
            while not (ends := [c for c in self.calls if c[0] in ending and c[1] == job_id]):
                left = deadline - time.monotonic()
                assert left > 0, f"job {job_id} never finished; calls: {self.calls}"
                self._changed.wait(left)
        return ends[0]


@dataclass
class EngineUnderTest:
    engine: Engine
    events: RecordingEvents
    kill_worker_of: Callable[[str], int]  # kills the worker running a job, returns its pid
    specs: list[EndpointSpec] = field(default_factory=list)

    def deploy(
        self,
        name: str = "test",
        endpoint_type: str = "Async",
        initial: int = 1,
        min: int = 0,
        max: int = 1,
        autoscaling: bool = False,
    ) -> EndpointSpec:
        spec = EndpointSpec(
            id=f"id-{name}",
            name=f"esd-{endpoint_type.lower()}-{name}",
            endpoint_type=endpoint_type,
            initial=initial,
            min=min,
            max=max,
            autoscaling=autoscaling,
        )
        self.engine.deploy(spec)
        self.specs.append(spec)
        return spec

    def submit(self, endpoint: EndpointSpec, job_id: str, steps: int = 1, **payload) -> JobSpec:
        job = tiny_job(endpoint.id, job_id, steps, **payload)
        self.engine.submit(job)
        return job

    def wait_worker_of(self, job_id: str) -> None:
        self.events.wait_for("job_progress", job_id)  # sampling has begun: the job is in a worker's hands


def _local_killer(engine) -> Callable[[str], int]:
    def kill(job_id: str) -> int:
        deadline = time.monotonic() + EVENT_WAIT_S
        while time.monotonic() < deadline:
            with engine._lock:
                pids = [
                    i.process.pid
                    for p in engine._pools.values()
                    for i in p.instances
                    if i.job is not None and i.job.id == job_id
                ]
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                return pids[0]
            time.sleep(0.02)
        raise AssertionError(f"no worker holds job {job_id}")

    return kill


KILLERS = {"local": _local_killer}


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> bytes:
    from tests.support.tiny_models import write_tiny_sd15_checkpoint

    path = tmp_path_factory.mktemp("tiny") / "tiny-sd15.safetensors"
    write_tiny_sd15_checkpoint(path)
    return path.read_bytes()


@pytest.fixture(params=ENGINES)
def engine(request, tmp_path, tiny_checkpoint) -> Iterator[Callable[..., EngineUnderTest]]:
    """`engine(**settings)`: an engine of each kind on a fresh data directory holding the tiny
    model; closed after the test."""
    opened: list[Engine] = []

    def build(**overrides) -> EngineUnderTest:
        from openesd.storage import open_store

        settings = IsolatedSettings(data_dir=tmp_path / "data", **(FAST | overrides))
        open_store(settings.resolved_object_store_url, settings).put_bytes(MODEL_KEY, tiny_checkpoint)
        events = RecordingEvents()
        backend = open_engine(request.param, settings, events.consumers)
        opened.append(backend)
        return EngineUnderTest(backend, events, KILLERS[request.param](backend))

    yield build
    for backend in opened:
        backend.close()
