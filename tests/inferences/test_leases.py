"""Job leases between API replicas on one database: a job carried by a live replica is not dispatched
again by another; a lapsed lease is claimed, and dispatched, by exactly one replica."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from openesd.server.app import create_app
from openesd.server.runtime import Runtime, boot
from openesd.inferences.leases import claim_lapsed
from openesd.inferences.reporter import EngineReporter
from openesd.metadata.models import InferenceJob
from tests.api.conftest import ESDClient, make_settings
from tests.support.esd_jobs import create_endpoint, create_job
from tests.support.no_worker_engine import NoWorkerEngine

LEASE_S = 1.5  # renewed every 0.5 s


class Replica(ESDClient):
    """One API replica: its own Runtime and app, an engine that only records what it is sent."""

    def __init__(self, client: TestClient, runtime: Runtime, engine: NoWorkerEngine):
        super().__init__(client)
        self.runtime, self.engine = runtime, engine

    def dispatched(self) -> list[str]:
        return [job.id for job in self.engine.submitted]


@pytest.fixture
def replica(tmp_path, database_url) -> Iterator[Callable[..., Replica]]:
    """Start replicas on one shared database (and one data dir, as docs/cluster.md asks)."""
    started: list[Replica] = []

    def start(job_lease_s: float = LEASE_S) -> Replica:
        settings = make_settings(tmp_path, database_url=database_url, job_lease_s=job_lease_s)
        runtime = boot(settings)
        engine = NoWorkerEngine(
            SimpleNamespace(capacity=lambda: {"cpu": 8}),
            EngineReporter(runtime.sessionmaker, runtime.store, runtime.waiter),
            ready=True,
        )
        runtime._execution = engine  # resume, the lease sweep and the routes all use this engine
        client = TestClient(create_app(settings, runtime))
        client.__enter__()
        started.append(Replica(client, runtime, engine))
        return started[-1]

    yield start
    for one in started:
        stop(one)


def stop(one: Replica) -> None:
    """What a replica's shutdown does: the app stops, then its Runtime closes (idempotent here)."""
    if not getattr(one, "stopped", False):
        one.http.__exit__(None, None, None)
        one.runtime.close()
        one.stopped = True


def start_job(esd: Replica) -> str:
    create_endpoint(esd, endpoint_name="test")
    started = create_job(esd, "txt2img", "esd-async-test", {"prompt": "a cat"}, one_call=True)
    assert started.status_code == 202, started.json()
    return started.json()["data"]["inference"]["inference_id"]


def lease_of(esd: Replica, job_id: str) -> tuple[str | None, float | None]:
    with esd.runtime.sessionmaker() as session:
        job = session.get(InferenceJob, job_id)
        return job.lease_owner, job.lease_expires


def wait_dispatched(esd: Replica, timeout: float = 5.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while not esd.dispatched() and time.monotonic() < deadline:
        time.sleep(0.05)
    return esd.dispatched()


def test_a_job_a_live_replica_carries_is_not_dispatched_again_by_a_replica_that_starts(replica):
    a = replica()
    job_id = start_job(a)
    assert a.dispatched() == [job_id]
    assert lease_of(a, job_id)[0] == a.runtime.replica
    b = replica()
    time.sleep(2 * LEASE_S)  # past the first lease: only A's renewals keep B off the job
    assert b.dispatched() == []
    assert a.dispatched() == [job_id]
    owner, expires = lease_of(a, job_id)
    assert owner == a.runtime.replica and expires > time.time()


def test_a_replica_that_closes_hands_its_jobs_to_the_next_sweep_once(replica):
    a = replica()
    job_id = start_job(a)
    b = replica()
    stop(a)  # releases its leases: B's next sweep (within LEASE_S / 3) takes the job
    assert wait_dispatched(b) == [job_id]
    assert lease_of(b, job_id)[0] == b.runtime.replica
    time.sleep(LEASE_S)  # later sweeps leave it alone: B renews its own lease
    assert b.dispatched() == [job_id]


def test_a_replica_that_dies_loses_its_jobs_once_its_lease_expires(replica):
    a = replica()
    job_id = start_job(a)
    b = replica()
    a.runtime._leases.stop()  # a crash: no more renewals, no release
    _, expires = lease_of(a, job_id)
    assert wait_dispatched(b) == [job_id]
    assert time.time() >= expires, "B took a job whose lease was still live"
    time.sleep(LEASE_S)
    assert b.dispatched() == [job_id] and a.dispatched() == [job_id]


def test_a_finished_job_is_not_claimed_even_when_its_lease_lapsed(replica):
    a = replica(job_lease_s=0.3)
    job_id = start_job(a)
    finish(a, job_id)
    a.runtime._leases.stop()
    time.sleep(0.5)  # its lease has expired
    b = replica(job_lease_s=0.3)
    time.sleep(0.5)
    assert b.dispatched() == []


def finish(esd: Replica, job_id: str) -> None:
    """What the reporter does to a finished job: it keeps its lease."""
    with esd.runtime.sessionmaker.begin() as session:
        job = session.get(InferenceJob, job_id)
        job.status, job.queued = "succeed", False


def test_of_sweeps_racing_for_an_expired_lease_exactly_one_wins(replica):
    a = replica(job_lease_s=0.3)
    job_id = start_job(a)
    a.runtime._leases.stop()
    time.sleep(0.5)  # the lease has expired; no replica renews it
    engines = [NoWorkerEngine(None, a.engine.reporter, ready=False) for _ in range(6)]
    gate = threading.Barrier(len(engines))

    def sweep(engine: NoWorkerEngine, owner: str) -> None:
        gate.wait()
        claim_lapsed(a.runtime.sessionmaker, engine, owner, 60.0)

    threads = [threading.Thread(target=sweep, args=(engine, f"racer-{n}")) for n, engine in enumerate(engines)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    winners = [n for n, engine in enumerate(engines) if engine.submitted]
    assert len(winners) == 1, winners
    assert [job.id for job in engines[winners[0]].submitted] == [job_id]
    assert lease_of(a, job_id)[0] == f"racer-{winners[0]}"
