"""Server-Sent Events read from `job_events`: replay after `Last-Event-ID`, then follow; short sessions only."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from openesd.jobevents.bell import EventBell
from openesd.jobevents.publish import TERMINAL_KINDS
from openesd.metadata.models import JobEventRow
from openesd.storage.base import ObjectStore

HEARTBEAT_S = 15.0
BATCH = 200
# PostgreSQL hands out ids when a row is inserted, not when it commits: an event may commit after a higher id
# was already sent. Ids are taken as settled once a later event is this old; younger ones are read again.
SETTLE_S = {"postgresql": 2.0}


@dataclass(frozen=True)
class Scope:
    """Which events a stream carries: one job's (`job_id`), or those of jobs owned by one of `owners` (None:
    every job, for a requester who sees all)."""

    job_kind: str | None = None
    job_id: str | None = None
    owners: frozenset[str] | None = None

    @property
    def single(self) -> bool:
        return self.job_id is not None


@dataclass(frozen=True)
class Delivered:
    id: int
    kind: str
    job_kind: str
    job_id: str
    data: dict[str, Any]
    created: float


@dataclass
class EventStreams:
    """What a stream needs; one per request, built from the app's pieces (routes.py)."""

    bell: EventBell
    make_session: sessionmaker[Session]
    store: ObjectStore
    url_ttl_s: int
    heartbeat_s: float = HEARTBEAT_S

    def read_after(self, scope: Scope, floor: int) -> list[Delivered]:
        query = select(JobEventRow).where(JobEventRow.id > floor).order_by(JobEventRow.id).limit(BATCH)
        if scope.single:
            query = query.where(JobEventRow.job_kind == scope.job_kind, JobEventRow.job_id == scope.job_id)
        elif scope.owners is not None:
            query = query.where(JobEventRow.owner.in_(scope.owners))
        with self._make() as session:
            return [
                Delivered(r.id, r.kind, r.job_kind, r.job_id, dict(r.data or {}), r.created)
                for r in session.scalars(query)
            ]

    def _make(self) -> Session:
        return self.make_session()

    def frame(self, event: Delivered) -> str:
        """One SSE frame; object keys become signed GET URLs now (a stored URL would expire in the table)."""
        data = {"job_kind": event.job_kind, "job_id": event.job_id, "created": event.created, **event.data}
        ttl = self.url_ttl_s
        if isinstance(data.get("preview_key"), str):
            data["preview_url"] = self.store.signed_url(data["preview_key"], "GET", ttl)
        if isinstance(data.get("key"), str):
            data["url"] = self.store.signed_url(data["key"], "GET", ttl)
        if isinstance(data.get("keys"), list):
            data["urls"] = [self.store.signed_url(key, "GET", ttl) for key in data["keys"]]
        return f"id: {event.id}\nevent: {event.kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"

    async def follow(self, scope: Scope, last_event_id: int, *, ended: bool) -> AsyncIterator[str]:
        """Replay what came after `last_event_id`, then follow; a single job's stream ends after its terminal
        event, or once replayed when the job had already ended as the stream opened."""
        settle_s = SETTLE_S.get(self.make_session.kw["bind"].dialect.name, 0.0)
        floor, sent = last_event_id, {}  # sent: id -> created, the ids above `floor` already delivered
        quiet_since = time.monotonic()
        yield "retry: 1000\n\n"
        while True:
            seen = self.bell.generation
            events = await run_in_threadpool(self.read_after, scope, floor)
            for event in events:
                if event.id in sent:
                    continue
                sent[event.id] = event.created
                quiet_since = time.monotonic()
                yield self.frame(event)
                if scope.single and event.kind in TERMINAL_KINDS:
                    return
            floor, sent = _settle(floor, sent, settle_s)
            if ended and len(events) < BATCH:
                return
            if len(events) == BATCH:
                continue
            if time.monotonic() - quiet_since >= self.heartbeat_s:
                quiet_since = time.monotonic()
                yield ": keepalive\n\n"
            await self.bell.wait(seen, max(0.05, self.heartbeat_s - (time.monotonic() - quiet_since)))


def _settle(floor: int, sent: dict[int, float], settle_s: float) -> tuple[int, dict[int, float]]:
    """Raise the floor to the newest delivered id old enough that no lower id can still commit."""
    cutoff = time.time() - settle_s
    settled = [event_id for event_id, created in sent.items() if created <= cutoff]
    if settled:
        floor = max(floor, *settled)
    return floor, {event_id: created for event_id, created in sent.items() if event_id > floor}
