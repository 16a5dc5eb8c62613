"""Cancel on the engine: the worker stops at the model call that notices it (a fake generator shows the exact
step), and on the real local engine a running job stops mid-sampling while the same worker takes the next job."""

from __future__ import annotations

import json
import time
from pathlib import Path

from openesd.execution._endpoint_process import _serve
from openesd.execution.base import JobSpec
from openesd.execution.events import CancelJob, JobCancelled, JobProgress, JobStarted, StopInstance
from tests.support.memory_pipe import MemoryPipe

STEPS = 150  # the payload's most; Heun makes it about 300 model calls: still running when the cancel lands
HEUN = {"sampler_name": "Heun"}


class Sampler:
    """A generator whose model call number `cancel_during` is when the engine's CancelJob arrives."""

    def __init__(self, pipe: MemoryPipe, order: object, cancel_during: int, total: int = 10):
        self.pipe, self.order, self.cancel_during, self.total = pipe, order, cancel_during, total
        self.calls = 0

    def run(self, request, progress):
        for step in range(1, self.total + 1):
            self.calls += 1  # the model call
            if step == self.cancel_during:
                self.pipe.inbox.put(self.order)
            progress(step, self.total)
        raise AssertionError("ran to its end")


def job(job_id: str = "j") -> JobSpec:
    return JobSpec(id=job_id, endpoint_id="e", task="txt2img", param_key="k", payload_string=json.dumps({}))


def test_the_worker_stops_at_the_model_call_during_which_the_cancel_came(tmp_path: Path):
    for during in (1, 4, 9):
        pipe = MemoryPipe()
        sampler = Sampler(pipe, CancelJob("j"), during)
        assert _serve(pipe, job(), sampler, store=None, models_dir=tmp_path) is True  # the worker serves on
        sent = pipe.sent
        assert sent[0] == JobStarted("j", 0) and sent[-1] == JobCancelled("j", during)
        assert sampler.calls == during  # not one model call more
        assert all(isinstance(m, JobProgress) for m in sent[1:-1])


def test_a_stale_cancel_of_another_job_is_ignored_and_a_stop_ends_the_worker(tmp_path: Path):
    pipe = MemoryPipe()
    sampler = Sampler(pipe, CancelJob("an-earlier-job"), 2)
    pipe.inbox.put(CancelJob("an-earlier-job"))
    assert _serve(pipe, job(), sampler, store=None, models_dir=tmp_path) is True
    assert sampler.calls == sampler.total  # ran every model call: its end is the sampler's own complaint
    assert "ran to its end" in _drain(pipe)[-1].message
    stopping = MemoryPipe()
    assert _serve(stopping, job(), Sampler(stopping, StopInstance(), 3), store=None, models_dir=tmp_path) is False
    assert not any(isinstance(m, JobCancelled) for m in _drain(stopping))  # the engine dropped that job itself


def _drain(pipe: MemoryPipe) -> list:
    return pipe.sent


def test_a_running_job_is_cancelled_mid_sampling_and_the_worker_takes_the_next(engine):
    under = engine()
    spec = under.deploy()
    under.submit(spec, "long", steps=STEPS, **HEUN)
    under.wait_worker_of("long")
    under.submit(spec, "waiting", steps=STEPS, **HEUN)
    pid = _worker_pid(under.engine, "long")
    reported, total = under.events.of("job_progress", "long")[-1][1:]
    asked = time.monotonic()
    under.engine.cancel("waiting")  # still on the queue: dropped, never started
    under.engine.cancel("long")
    end = under.events.finished("long")
    took = time.monotonic() - asked
    assert end[0] == "job_cancelled" and reported <= end[2] < total, end
    assert under.events.finished("waiting") == ("job_cancelled", "waiting", 0)
    assert under.events.of("job_started", "waiting") == []
    under.submit(spec, "next", steps=2)
    assert under.events.finished("next")[0] == "job_succeeded"
    after = time.monotonic() - asked
    assert _worker_pid(under.engine, None) == pid  # the same worker process, alive and serving
    assert under.engine.instance_count(spec.id) == 1
    print(
        f"cancel: stopped at model call {end[2]} of {total} (last report {reported}) {took * 1000:.0f} ms after; "
        f"the next job done {after:.1f} s after the cancel"
    )


def _worker_pid(engine, job_id: str | None) -> int | None:
    """The local engine's worker process (Ray's replicas are Serve's: only their count is checked)."""
    if not hasattr(engine, "_pools"):
        return None
    with engine._lock:
        return next(
            i.process.pid
            for p in engine._pools.values()
            for i in p.instances
            if job_id is None or (i.job is not None and i.job.id == job_id)
        )
