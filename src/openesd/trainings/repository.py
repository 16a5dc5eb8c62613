"""All SQL for trainings."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from openesd.metadata.models import Checkpoint, CheckpointName, Training
from openesd.trainings.schemas import RUNNING


class TrainingRepository:
    def __init__(self, session: Session):
        self.session = session

    def get(self, training_id: str) -> Training | None:
        return self.session.get(Training, training_id)

    def get_for_update(self, training_id: str) -> Training | None:
        return self.session.get(Training, training_id, with_for_update=True)

    def add(self, training: Training) -> Training:
        self.session.add(training)
        self.session.flush()
        return training

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
        query = (select(Checkpoint).join(CheckpointName, CheckpointName.checkpoint_id == Checkpoint.id)
                 .where(CheckpointName.name == name))
        return next((c for c in self.session.scalars(query) if c.names and c.names[0] == name), None)
