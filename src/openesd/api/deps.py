"""The composition root: every piece a route needs, as an `Annotated` dependency.

The pieces are built once in `server/app.py` (lifespan) and kept on `app.state`; no route reads
`app.state`, it asks for a piece here. Tests swap them with `app.dependency_overrides`. The types of
the pieces the domains own are named for the type checker only: `api/` sits under the domains.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import TYPE_CHECKING, Annotated, ParamSpec, TypeVar

from fastapi import BackgroundTasks, Depends, Request
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from openesd.execution.base import Engine
from openesd.keys import PasswordCipher
from openesd.metadata.db import AFTER_COMMIT, KEEP_DESPITE_ERROR, after_commit, reads_in_place
from openesd.settings import Settings

if TYPE_CHECKING:
    from openesd.checkpoints.importer import CheckpointImporter
    from openesd.inferences.reporter import JobWaiter
    from openesd.jobevents.bell import EventBell
    from openesd.storage.base import ObjectStore
    from openesd.trainings.reporter import TrainingReporter


# `app.state` is untyped (Starlette): each piece is bound to its type once, here.
# The dependencies that do no I/O are `async def`: FastAPI runs a plain `def` one in the thread pool, and
# a hop there per dependency cost more than a listing page (bench/listing.py).
async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_store(request: Request) -> ObjectStore:
    store: ObjectStore = request.app.state.store
    return store


async def get_sessionmaker(request: Request) -> sessionmaker[Session]:
    """For work that outlives the request's transaction (a login throttle's own writes)."""
    factory: sessionmaker[Session] = request.app.state.sessionmaker
    return factory


async def get_password_cipher(request: Request) -> PasswordCipher:
    cipher: PasswordCipher = request.app.state.password_cipher
    return cipher


async def get_engine(request: Request) -> Engine:
    """The execution engine; opened on first use."""
    engine: Engine = request.app.state.runtime.execution
    return engine


async def get_importer(request: Request) -> CheckpointImporter:
    importer: CheckpointImporter = request.app.state.runtime.importer
    return importer


async def get_waiter(request: Request) -> JobWaiter:
    waiter: JobWaiter = request.app.state.runtime.waiter
    return waiter


async def get_event_bell(request: Request) -> EventBell:
    """Wakes this process's open event streams (jobevents/bell.py)."""
    bell: EventBell = request.app.state.runtime.event_bell
    return bell


async def get_replica(request: Request) -> str:
    """The owner of the job leases this process takes."""
    replica: str = request.app.state.runtime.replica
    return replica


async def get_training_reporter(request: Request) -> TrainingReporter:
    """Writes a training's failure when the engine refuses it."""
    reporter: TrainingReporter = request.app.state.runtime.training_reporter()
    return reporter


async def get_session(request: Request, background: BackgroundTasks) -> AsyncIterator[Session]:
    """One transaction per request: commit when the route returns, roll back when it raises (unless a service marked
    a failure to keep, `keep_despite_error`). Opening a session reads nothing; its end (commit, close) runs in the
    thread pool, one hop, or in place when it has nothing to write on SQLite. What was registered with
    `after_commit` runs once the commit succeeded, after the response is sent; a request that answers an error runs
    none of it."""
    session: Session = request.app.state.sessionmaker()
    try:
        yield session
    except BaseException:
        await _in_place_or_pool(session, _end, session, commit=session.info.pop(KEEP_DESPITE_ERROR, False))
        raise
    await _in_place_or_pool(session, _end, session, commit=True)
    for action, args in session.info.pop(AFTER_COMMIT, ()):
        background.add_task(action, *args)


Params = ParamSpec("Params")
Result = TypeVar("Result")


async def read(session: Session, call: Callable[Params, Result], *args: Params.args, **kwargs: Params.kwargs) -> Result:
    """Run a service call that only reads, from an `async def` route: in place on SQLite, in the thread
    pool on PostgreSQL (`reads_in_place`). The job listing under load: bench/listing.py."""
    return await _in_place_or_pool(session, call, *args, **kwargs)


async def _in_place_or_pool(
    session: Session, call: Callable[Params, Result], *args: Params.args, **kwargs: Params.kwargs
) -> Result:
    if reads_in_place(session):
        return call(*args, **kwargs)
    return await run_in_threadpool(call, *args, **kwargs)


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


async def get_after_commit(session: SessionDep) -> Callable[..., None]:
    """`on_commit(action, *args)`: hand work to the engine once the request's rows are committed."""
    return partial(after_commit, session)


AfterCommitDep = Annotated[Callable[..., None], Depends(get_after_commit)]
SessionmakerDep = Annotated[sessionmaker[Session], Depends(get_sessionmaker)]
PasswordCipherDep = Annotated[PasswordCipher, Depends(get_password_cipher)]
EngineDep = Annotated[Engine, Depends(get_engine)]
ImporterDep = Annotated["CheckpointImporter", Depends(get_importer)]
WaiterDep = Annotated["JobWaiter", Depends(get_waiter)]
ReplicaDep = Annotated[str, Depends(get_replica)]
EventBellDep = Annotated["EventBell", Depends(get_event_bell)]
TrainingReporterDep = Annotated["TrainingReporter", Depends(get_training_reporter)]
