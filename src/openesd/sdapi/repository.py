"""The WebUI API's queries: a user's stored WebUI settings and the user's latest unfinished job."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from openesd.metadata.models import InferenceJob, WebUIOptions


class WebUIRepository:
    def __init__(self, session: Session):
        self.session = session

    def options(self, username: str) -> dict[str, Any]:
        row = self.session.get(WebUIOptions, username)
        return dict(row.options) if row is not None else {}

    def save_options(self, username: str, options: dict[str, Any]) -> None:
        row = self.session.get(WebUIOptions, username, with_for_update=True)
        if row is None:
            self.session.add(WebUIOptions(username=username, options=options, updated=time.time()))
        else:
            row.options, row.updated = options, time.time()
        self.session.flush()

    def latest_unfinished(self, username: str) -> InferenceJob | None:
        """The user's newest job still on its way (queued or running): what `/progress` and `/interrupt` mean."""
        query = (
            select(InferenceJob)
            .where(InferenceJob.owner == username, InferenceJob.queued.is_(True))
            .order_by(InferenceJob.created.desc())
            .limit(1)
        )
        return self.session.scalars(query).first()

    def unfinished_count(self, username: str) -> int:
        query = select(InferenceJob.id).where(InferenceJob.owner == username, InferenceJob.queued.is_(True))
        return len(self.session.scalars(query).all())
