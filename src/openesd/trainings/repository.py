"""All SQL for trainings."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from openesd.metadata.models import Checkpoint, CheckpointName, Training
from openesd.metadata.repository import Repository
from openesd.trainings.schemas import RUNNING


class TrainingRepository(Repository[Training]):
    model = Training

    def newest_first(self) -> Sequence[Training]:
        return self.session.scalars(select(Training).order_by(Training.created.desc(), Training.id.desc())).all()

    def running(self, instance_type: str | None = None) -> Sequence[Training]:
        query = select(Training).where(Training.job_status.in_(RUNNING))
        if instance_type is not None:
            query = query.where(Training.instance_type == instance_type)
        return self.session.scalars(query).all()

    def delete(self, training: Training) -> None:
        self.session.delete(training)
        self.session.flush()

    def checkpoint_named(self, name: str) -> Checkpoint | None:
        """The checkpoint whose first file name is `name`, any type and status (esd-api.md §10.2)."""
        query = (
            select(Checkpoint)
            .join(CheckpointName, CheckpointName.checkpoint_id == Checkpoint.id)
            .where(CheckpointName.name == name)
        )
        return next((c for c in self.session.scalars(query) if c.names and c.names[0] == name), None)
