"""All SQL for the legacy tables (dreambooth-era base models, esd-legacy-api.md §9)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from openesd.metadata.models import LegacyModel


class LegacyModelRepository:
    def __init__(self, session: Session):
        self.session = session

    def get(self, model_id: str) -> LegacyModel | None:
        return self.session.get(LegacyModel, model_id)

    def add(self, model: LegacyModel) -> LegacyModel:
        self.session.add(model)
        self.session.flush()
        return model

    def newest_first(self, types: list[str], statuses: list[str]) -> Sequence[LegacyModel]:
        query = select(LegacyModel).order_by(LegacyModel.created.desc(), LegacyModel.id.desc())
        if types:
            query = query.where(LegacyModel.model_type.in_(types))
        if statuses:
            query = query.where(LegacyModel.job_status.in_(statuses))
        return self.session.scalars(query).all()
