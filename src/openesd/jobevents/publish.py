"""`publish`: one event row written in the caller's transaction, so an event exists iff its change committed."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from openesd.metadata.models import JobEventRow
from openesd.webhooks.service import on_event

JOB_KINDS = ("inference", "training")
TERMINAL_KINDS = ("succeeded", "failed", "cancelled")
# PostgreSQL: `pg_notify` in the publishing transaction is delivered at its commit (never for a rollback), and
# wakes every replica's streams at once (bell.py).
CHANNEL = "openesd_job_events"


def publish(session: Session, *, job_kind: str, job_id: str, owner: str | None, kind: str, data: dict[str, Any]) -> int:
    """Add the event to the caller's transaction and return its id (the stream's `id:`)."""
    if job_kind not in JOB_KINDS:
        raise ValueError(f"job_kind {job_kind!r} should be one of {', '.join(JOB_KINDS)}")
    row = JobEventRow(job_kind=job_kind, job_id=job_id, owner=owner, kind=kind, data=data, created=time.time())
    session.add(row)
    session.flush()
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_notify(CHANNEL, str(row.id))))
    # The job's webhook, if it asked for this kind, gets its delivery queued in the same transaction.
    on_event(session, job_kind, job_id, owner or "", kind, data)
    return row.id


def prune(session: Session, keep_s: float) -> int:
    """Delete the events older than `keep_s` seconds; how many went."""
    result = session.execute(delete(JobEventRow).where(JobEventRow.created < time.time() - keep_s))
    return int(getattr(result, "rowcount", 0) or 0)
