"""The composition root: every piece a route needs, as an `Annotated` dependency.

The pieces are built once in `api/app.py` (lifespan) and kept on `app.state`; tests swap them
with `app.dependency_overrides`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from openesd.metadata.db import KEEP_DESPITE_ERROR
from openesd.settings import Settings

if TYPE_CHECKING:
    from openesd.storage.base import ObjectStore


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_store(request: Request) -> ObjectStore:
    return request.app.state.store


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request: commit when the route returns, roll back when it raises (unless a
    service marked a failure to keep, `keep_despite_error`)."""
    session: Session = request.app.state.sessionmaker()
    try:
        yield session
        session.commit()
    except BaseException:
        if session.info.pop(KEEP_DESPITE_ERROR, False):
            session.commit()
        else:
            session.rollback()
        raise
    finally:
        session.close()


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
StoreDep = Annotated["ObjectStore", Depends(get_store)]
# scope="function": the commit happens before the response is sent, so a 2xx means it is stored.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
