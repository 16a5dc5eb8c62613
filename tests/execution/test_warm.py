"""Warm endpoints: an instance loads its endpoint's `preload` before it is ready, and jobs go to the instance
that already holds their checkpoint (model-affinity routing of the local engine)."""

from __future__ import annotations

from collections import deque

from openesd.execution._pool import Instance, Pool
from openesd.execution.base import EndpointSpec, JobSpec
from openesd.execution.events import InstanceReady, JobSucceeded
from openesd.execution.local import LocalEngine
from tests.conftest import IsolatedSettings
from tests.execution.conftest import MODEL_KEY, RecordingEvents

TINY = {"id": "tiny", "model_name": "tiny-sd15.safetensors", "key": MODEL_KEY}


def _spec(**changes) -> EndpointSpec:
    values = dict(id="id-warm", name="esd-async-warm", endpoint_type="Async", initial=1, min=0, max=1)
    return EndpointSpec(**(values | {"autoscaling": False} | changes))


def test_a_preloaded_instance_runs_its_first_job_without_loading_the_checkpoint(engine):
    under = engine()
    spec = _spec(preload=[TINY])
    under.engine.deploy(spec)
    under.events.wait_for("endpoint_ready", spec.id)
    under.submit(spec, "first")
    name, _, result = under.events.finished("first")
    assert name == "job_succeeded", result
    assert result["worker"]["model_loads"] == 0 and result["worker"]["cache_hits"] >= 1
    (instance,) = under.engine._pools[spec.id].instances  # type: ignore[attr-defined]
    assert instance.checkpoints == {"tiny"}  # what InstanceReady reported: affinity knows it at once


class _Conn:
    def __init__(self):
        self.sent: list[object] = []

    def send(self, message: object) -> None:
        self.sent.append(message)


def _job(job_id: str, checkpoint: str) -> JobSpec:
    models = {"Stable-diffusion": [{"id": checkpoint, "model_name": f"{checkpoint}.safetensors", "key": "k"}]}
    return JobSpec(id=job_id, endpoint_id="id-warm", task="txt2img", param_key="p", models=models)  # type: ignore[typeddict-item]


def test_a_job_goes_to_the_idle_instance_holding_its_checkpoint(tmp_path):
    engine = LocalEngine(IsolatedSettings(data_dir=tmp_path), RecordingEvents().consumers, gpus=0)
    try:
        pool = Pool(_spec(initial=3))
        cold, warm_a, warm_b = (Instance(None, _Conn(), None, ready=True) for _ in range(3))
        pool.instances = [cold, warm_a, warm_b]
        engine._handle(pool, warm_a, InstanceReady(1, ("a",)))  # preloaded
        warm_b.jobs = [_job("earlier", "b")]
        engine._handle(pool, warm_b, JobSucceeded("earlier", {}))  # loaded by a job it ran
        pool.queue = deque([_job("wants-b", "b"), _job("wants-c", "c"), _job("wants-a", "a")])
        engine._dispatch(pool)
    finally:
        engine.close()
    assert (warm_b.job.id, warm_a.job.id, cold.job.id) == ("wants-b", "wants-a", "wants-c")  # type: ignore[union-attr]
    assert [m.id for m in warm_b.conn.sent] == ["wants-b"] and not pool.queue


def test_warming_rembg_runs_its_alpha_matting_once():
    from openesd.generation.tasks.rembg import warm_alpha_matting

    warm_alpha_matting()  # the rembg/pymatting API the worker warms at start is still there
