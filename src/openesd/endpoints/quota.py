"""Instance quotas, counted once for endpoint creation and training starts (esd-api.md §7, §10).

An instance type's use is its running trainings plus what its live endpoints may run at most. Trainings
start against the same quota and import this module; the running trainings are counted here by status, so
`endpoints` never imports `trainings` (scripts/import_graph.py).
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from openesd.endpoints.repository import EndpointRepository
from openesd.metadata.models import Training
from openesd.settings import Settings

# Training statuses that hold an instance (`trainings.schemas.RUNNING`).
RUNNING_TRAININGS = ("Initial", "Training", "Starting", "Downloading", "Uploading", "Pending")


def reserved(autoscaling: bool, initial: int, maximum: int) -> int:
    """Instances an endpoint may run at most: what counts against the quota."""
    return max(initial, maximum) if autoscaling else initial


class InstanceQuota:
    def __init__(self, session: Session, settings: Settings, capacity: dict[str, int]):
        """`capacity`: the engine's instances per type; `settings.instance_quotas` overrides it."""
        self.session = session
        self.endpoints = EndpointRepository(session)
        self.quotas = {**capacity, **settings.instance_quotas}

    def limit(self, instance_type: str) -> int:
        return self.quotas.get(instance_type, 0)

    def used(self, instance_type: str) -> int:
        """Running trainings plus what the live endpoints of `instance_type` may run at most."""
        running = (
            select(func.count())
            .select_from(Training)
            .where(Training.job_status.in_(RUNNING_TRAININGS), Training.instance_type == instance_type)
        )
        return (self.session.scalar(running) or 0) + sum(
            reserved(e.autoscaling, e.initial_instance_count, e.max_instance_number)
            for e in self.endpoints.of_instance_type(instance_type)
        )
