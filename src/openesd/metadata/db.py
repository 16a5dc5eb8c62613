"""Engine and session factory for the metadata database, from a URL (SQLite or PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from openesd.errors import ConfigurationError

SUPPORTED_DRIVERS = ("sqlite", "postgresql+psycopg")


def create_db_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL, foreign keys and a busy timeout (several processes)."""
    parsed = make_url(url)
    if parsed.drivername not in SUPPORTED_DRIVERS:
        raise ConfigurationError(
            f"unsupported database URL scheme {parsed.drivername!r}; "
            f"valid: {', '.join(s + '://' for s in SUPPORTED_DRIVERS)}"
        )
    if parsed.drivername == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, json_deserializer=read_json
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, json_deserializer=read_json)


def read_json(text: str) -> Any:
    """JSON columns as the standard library reads them, at orjson's speed (a listing page decodes four
    columns a row); the standard library still reads what orjson refuses (NaN, integers past 64 bits)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _sqlite_pragmas(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


KEEP_DESPITE_ERROR = "openesd_keep_despite_error"
AFTER_COMMIT = "openesd_after_commit"


def keep_despite_error(session: Session) -> None:
    """Commit this request's changes even though it answers an error: a failure the record must remember
    (an upload found bad after its parts were joined); the request's session dependency honours it."""
    session.info[KEEP_DESPITE_ERROR] = True


def reads_in_place(session: Session) -> bool:
    """Whether this session's work, and its end, may run on the calling thread: on SQLite (a library in this
    process, where in WAL mode a read never waits for a writer) while it has written nothing and holds no
    change to write. Then a commit writes nothing and a read costs less than a hop to another thread, which
    under load also waits for the GIL. Never on PostgreSQL: every statement is a network round trip. Nor
    when the session would have to wait for a pooled connection: requests in the thread pool may hold them
    all, and the event loop must not stall behind them."""
    bind = session.get_bind()
    if bind.dialect.name != "sqlite" or session.new or session.dirty or session.deleted:
        return False
    if not session.in_transaction():
        return _idle_connections(bind) > 0
    dbapi = session.connection().connection.dbapi_connection  # None only once the pool invalidated it
    return dbapi is not None and not dbapi.in_transaction


def _idle_connections(bind: Engine | Connection) -> int:
    """Connections waiting in the engine's pool (a pool that does not count them counts as none)."""
    pool = bind.pool if isinstance(bind, Engine) else bind.engine.pool
    checked_in = getattr(pool, "checkedin", None)
    return int(checked_in()) if callable(checked_in) else 0


def commit_now(session: Session) -> None:
    """The request's commit, early, and its after-commit work at once, on this thread: for a request that
    waits on what it handed to the engine (a real-time job, `inferences/realtime.py`). The session
    dependency's own commit then finds nothing left to write or run."""
    session.commit()
    for action, args in session.info.pop(AFTER_COMMIT, ()):
        action(*args)


def after_commit(session: Session, action: Callable[..., object], *args: object) -> None:
    """Run `action(*args)` once this request's transaction is committed, after the response is sent;
    dropped when it rolls back. How work reaches the engine: it sees only committed rows. The request's
    session dependency (`api/deps.py`) runs the list."""
    session.info.setdefault(AFTER_COMMIT, []).append((action, args))
