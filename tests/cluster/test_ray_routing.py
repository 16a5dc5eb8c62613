"""Model-affinity routing on the Ray engine: with two replicas, each job goes to the replica that already holds its
checkpoint (Serve's router, told the checkpoint as the multiplexed model id), not to whichever is free."""

from __future__ import annotations

import time

import pytest

from openesd.execution.events import ReplicaOfJob
from tests.execution.conftest import EVENT_WAIT_S, tiny_job

pytestmark = [pytest.mark.ray, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def _wait_running(endpoint_id: str, replicas: int) -> None:
    from ray import serve

    from openesd.execution._ray_apps import app_name, running_replicas

    deadline = time.monotonic() + EVENT_WAIT_S
    while time.monotonic() < deadline:
        app = serve.status().applications.get(app_name(endpoint_id))
        if app is not None and running_replicas(app) >= replicas:
            return
        time.sleep(0.2)
    raise AssertionError(f"{replicas} replicas of {endpoint_id} never ran")


def test_each_job_goes_to_the_replica_that_already_holds_its_checkpoint(engine):
    under = engine()
    endpoint = under.deploy("affinity", initial=2, max=2)
    _wait_running(endpoint.id, 2)
    replica_of: dict[str, int] = {}
    handle = under.engine._handle

    def spy(job, message):  # the pid each job's replica names first
        if isinstance(message, ReplicaOfJob):
            replica_of[job.spec.id] = message.pid
        return handle(job, message)

    under.engine._handle = spy
    for round in range(3):
        for checkpoint in ("a", "b"):
            under.engine.submit(tiny_job(endpoint.id, f"{checkpoint}{round}", checkpoint=checkpoint))
            end = under.events.finished(f"{checkpoint}{round}")
            assert end[0] == "job_succeeded", end
            loads = end[2]["worker"]["model_loads"]
            assert (loads > 0) == (round == 0), (end[1], loads)  # loaded once, on its own replica
    on_a = {replica_of[f"a{r}"] for r in range(3)}
    on_b = {replica_of[f"b{r}"] for r in range(3)}
    # Left to a free pick, six jobs on two idle replicas would land on both with each checkpoint.
    assert len(on_a) == 1 and len(on_b) == 1 and on_a != on_b, (replica_of,)
