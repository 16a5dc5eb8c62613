"""After a server start: run again the endpoints that were running, and the queued jobs no live replica
holds (a lapsed or absent lease)."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from openesd.endpoints.repository import EndpointRepository
from openesd.endpoints.service import spec_of
from openesd.execution.base import Engine
from openesd.inferences.leases import claim_lapsed


def resume(make_session: sessionmaker[Session], engine: Engine, owner: str, lease_s: float) -> tuple[int, int]:
    """(endpoints deployed, jobs dispatched). A job restarts at the attempt it had reached."""
    with make_session() as session:
        endpoints = [spec_of(e) for e in EndpointRepository(session).to_run()]
    for endpoint in endpoints:
        engine.deploy(endpoint)
    return len(endpoints), claim_lapsed(make_session, engine, owner, lease_s)
