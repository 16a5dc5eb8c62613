"""Which database work a request may run on the event loop's own thread (metadata/db.py `reads_in_place`):
reads on SQLite, and the end of a session that wrote nothing; never a write, never PostgreSQL. A write
or a network round trip there would hold up every other request the server is answering."""

from __future__ import annotations

import math

from sqlalchemy import select, update

from openesd.metadata.db import create_db_engine, create_sessionmaker, read_json, reads_in_place
from openesd.metadata.migrate import upgrade_to_head
from openesd.metadata.models import Role


def _sessions(url):
    engine = create_db_engine(url)
    upgrade_to_head(engine)
    return engine, create_sessionmaker(engine)


def test_sqlite_reads_in_place_until_something_is_written(tmp_path):
    engine, sessions = _sessions(f"sqlite:///{tmp_path / 'openesd.db'}")  # migrations left a pooled connection
    with sessions() as session:
        assert reads_in_place(session)  # nothing done yet
        session.scalars(select(Role)).all()
        assert reads_in_place(session)  # a read opens no write transaction
        session.add(Role(name="team", creator="api", permissions=["inference:all"]))
        assert not reads_in_place(session)  # a pending change: the commit would write
        session.flush()
        assert not reads_in_place(session)  # written, not committed: the commit waits on the disk
        session.commit()
        assert reads_in_place(session)
        session.execute(update(Role).values(creator="root"))
        assert not reads_in_place(session)  # a statement that writes, without the ORM
        session.rollback()
    engine.dispose()


def test_never_waits_for_a_pooled_connection_in_place(tmp_path):
    """With every pooled connection held (by requests in the thread pool), a read would wait for one."""
    engine, sessions = _sessions(f"sqlite:///{tmp_path / 'openesd.db'}")
    held = [engine.connect() for _ in range(engine.pool.size())]
    with sessions() as session:
        assert not reads_in_place(session)
        held.pop().close()
        assert reads_in_place(session)  # one waits in the pool now
    for connection in held:
        connection.close()
    engine.dispose()


def test_postgresql_never_in_place(postgres_url):
    engine, sessions = _sessions(postgres_url)
    with sessions() as session:
        assert not reads_in_place(session)
        session.scalars(select(Role)).all()
        assert not reads_in_place(session)
    engine.dispose()


def test_json_columns_read_what_the_standard_library_reads():
    assert read_json('{"steps": 20, "cfg": 7.5, "names": ["a", "é"]}') == {"steps": 20, "cfg": 7.5, "names": ["a", "é"]}
    assert math.isnan(read_json('{"loss": NaN}')["loss"])  # written by json.dumps, refused by orjson
    assert read_json("[18446744073709551616]") == [2**64]
