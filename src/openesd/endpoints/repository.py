"""All SQL for endpoints."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from openesd.metadata.models import Endpoint
from openesd.metadata.repository import Repository

SCHEDULABLE = ("InService", "Updating")


class EndpointRepository(Repository[Endpoint]):
    model = Endpoint

    def by_name(self, name: str) -> Endpoint | None:
        return self.session.scalars(select(Endpoint).where(Endpoint.endpoint_name == name)).first()

    def live(self) -> Sequence[Endpoint]:
        """Endpoints not deleted (legacy `status` included), newest first."""
        query = (
            select(Endpoint)
            .where(Endpoint.endpoint_status != "Deleted")
            .order_by(Endpoint.started.desc(), Endpoint.id.desc())
        )
        return [e for e in self.session.scalars(query) if e.status != "deleted"]

    def all_newest_first(self) -> Sequence[Endpoint]:
        return self.session.scalars(select(Endpoint).order_by(Endpoint.started.desc(), Endpoint.id.desc())).all()

    def of_instance_type(self, instance_type: str) -> Sequence[Endpoint]:
        return [e for e in self.live() if e.instance_type == instance_type]

    def schedulable(self, endpoint_type: str) -> Sequence[Endpoint]:
        query = select(Endpoint).where(
            Endpoint.endpoint_type == endpoint_type, Endpoint.endpoint_status.in_(SCHEDULABLE)
        )
        return [e for e in self.session.scalars(query) if e.status != "deleted"]

    def to_run(self) -> Sequence[Endpoint]:
        """Endpoints a server should be running after a restart."""
        query = select(Endpoint).where(Endpoint.endpoint_status.in_(("Creating", *SCHEDULABLE)))
        return self.session.scalars(query).all()

    def delete(self, endpoint: Endpoint) -> None:
        self.session.delete(endpoint)
        self.session.flush()
