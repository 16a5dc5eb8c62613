"""Job leases between API replicas on one database: each replica renews the leases of the jobs it
dispatched, and dispatches again only the unfinished jobs whose lease lapsed (decisions.md, Ray)."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid

from sqlalchemy.orm import Session, sessionmaker

from openesd.execution.base import Engine
from openesd.inferences.reporter import mark_cancelled
from openesd.inferences.repository import InferenceRepository
from openesd.inferences.service import job_spec

log = logging.getLogger("openesd.inferences.leases")


def replica_name() -> str:
    """`host:pid:uuid`: unique per Runtime, so a restarted process does not inherit its old leases."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4()}"


def claim_lapsed(make_session: sessionmaker[Session], engine: Engine, owner: str, lease_s: float) -> int:
    """Claim each unfinished job whose lease lapsed and dispatch those this replica won; how many."""
    with make_session() as session:
        candidates = InferenceRepository(session).lapsed(time.time())
    dispatched = 0
    for job_id in candidates:
        with make_session.begin() as session:  # the lease is committed before the engine sees the job
            jobs = InferenceRepository(session)
            now = time.time()
            if not jobs.claim(job_id, owner, now, now + lease_s):
                continue  # another replica won it, or it finished meanwhile
            job = jobs.get(job_id)
            if job is None:  # deleted since the claim
                continue
            if job.cancelled_by is not None:  # cancelled while no live replica carried it: nothing runs it now
                mark_cancelled(job)
                continue
            spec = job_spec(job)
        engine.submit(spec)
        dispatched += 1
    return dispatched


def release(make_session: sessionmaker[Session], owner: str) -> int:
    """After the engine closed: its jobs are no longer carried here, another replica may take them now."""
    with make_session.begin() as session:
        return InferenceRepository(session).release(owner)


class LeaseKeeper:
    """A daemon thread: every `lease_s / 3` it renews this replica's leases, then claims lapsed jobs."""

    def __init__(self, make_session: sessionmaker[Session], engine: Engine, owner: str, lease_s: float):
        self._make_session, self._engine, self.owner, self.lease_s = make_session, engine, owner, lease_s
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="openesd-job-leases", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def renew(self) -> int:
        with self._make_session.begin() as session:
            return InferenceRepository(session).renew(self.owner, time.time() + self.lease_s)

    def sweep(self) -> int:
        """Renew first, so this replica's own jobs never look lapsed to it."""
        self.renew()
        return claim_lapsed(self._make_session, self._engine, self.owner, self.lease_s)

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(10.0)

    def _run(self) -> None:
        while not self._stopped.wait(self.lease_s / 3):
            try:
                self.sweep()
            except Exception:  # a database hiccup must not end the renewals
                log.exception("renewing or claiming job leases failed")
