"""All SQL for the legacy tables (dreambooth-era base models, esd-legacy-api.md §9)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from openesd.metadata.models import LegacyModel
from openesd.metadata.repository import Repository


class LegacyModelRepository(Repository[LegacyModel]):
    model = LegacyModel

    def newest_first(self, types: list[str], statuses: list[str]) -> Sequence[LegacyModel]:
        query = select(LegacyModel).order_by(LegacyModel.created.desc(), LegacyModel.id.desc())
        if types:
            query = query.where(LegacyModel.model_type.in_(types))
        if statuses:
            query = query.where(LegacyModel.job_status.in_(statuses))
        return self.session.scalars(query).all()
