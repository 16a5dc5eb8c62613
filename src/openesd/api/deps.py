"""The composition root: every piece a route needs, as an `Annotated` dependency.

The pieces are built once in `server/app.py` (lifespan) and kept on `app.state`; tests swap them
with `app.dependency_overrides`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from openesd.metadata.db import KEEP_DESPITE_ERROR
from openesd.settings import Settings

if TYPE_CHECKING:
    from openesd.storage.base import ObjectStore


# The dependencies that do no I/O are `async def`: FastAPI runs a plain `def` one in the thread pool, and
# a hop there per dependency cost more than a listing page (bench/listing.py).
async def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_store(request: Request) -> ObjectStore:
    return request.app.state.store


async def get_session(request: Request) -> AsyncIterator[Session]:
    """One transaction per request: commit when the route returns, roll back when it raises (unless a
    service marked a failure to keep, `keep_despite_error`). Opening a session reads nothing; its end
    (commit, close) runs in the thread pool: one hop there, not two."""
    session: Session = request.app.state.sessionmaker()
    try:
        yield session
    except BaseException:
        await run_in_threadpool(_end, session, commit=session.info.pop(KEEP_DESPITE_ERROR, False))
        raise
    await run_in_threadpool(_end, session, commit=True)


def _end(session: Session, *, commit: bool) -> None:
    try:
        if commit:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
StoreDep = Annotated["ObjectStore", Depends(get_store)]
# scope="function": the commit happens before the response is sent, so a 2xx means it is stored.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
