"""All SQL for endpoints."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from openesd.metadata.models import Endpoint

SCHEDULABLE = ("InService", "Updating")


class EndpointRepository:
    def __init__(self, session: Session):
        self.session = session

    def get(self, endpoint_id: str) -> Endpoint | None:
        return self.session.get(Endpoint, endpoint_id)

    def by_name(self, name: str) -> Endpoint | None:
        return self.session.scalars(select(Endpoint).where(Endpoint.endpoint_name == name)).first()

    def live(self) -> Sequence[Endpoint]:
        """Endpoints not deleted (legacy `status` included), newest first."""
        query = select(Endpoint).where(Endpoint.endpoint_status != "Deleted").order_by(
            Endpoint.started.desc(), Endpoint.id.desc())
        return [e for e in self.session.scalars(query) if e.status != "deleted"]

    def all_newest_first(self) -> Sequence[Endpoint]:
        return self.session.scalars(select(Endpoint).order_by(Endpoint.started.desc(), Endpoint.id.desc())).all()

    def of_instance_type(self, instance_type: str) -> Sequence[Endpoint]:
        return [e for e in self.live() if e.instance_type == instance_type]

    def schedulable(self, endpoint_type: str) -> Sequence[Endpoint]:
        query = select(Endpoint).where(Endpoint.endpoint_type == endpoint_type,
                                       Endpoint.endpoint_status.in_(SCHEDULABLE))
        return [e for e in self.session.scalars(query) if e.status != "deleted"]

    def to_run(self) -> Sequence[Endpoint]:
        """Endpoints a server should be running after a restart."""
        query = select(Endpoint).where(Endpoint.endpoint_status.in_(("Creating", *SCHEDULABLE)))
        return self.session.scalars(query).all()

    def add(self, endpoint: Endpoint) -> Endpoint:
        self.session.add(endpoint)
        self.session.flush()
        return endpoint

    def delete(self, endpoint: Endpoint) -> None:
        self.session.delete(endpoint)
        self.session.flush()
