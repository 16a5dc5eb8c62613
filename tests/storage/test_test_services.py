"""The root fixtures other suites build on: every `database_url` is a fresh, working database."""

from __future__ import annotations

import pytest
import sqlalchemy as sa


def _assert_fresh_then_claim(url: str) -> None:
    engine = sa.create_engine(url)
    try:
        assert sa.inspect(engine).get_table_names() == []  # nothing left by another test
        with engine.begin() as connection:
            connection.execute(sa.text("CREATE TABLE claimed (id INTEGER PRIMARY KEY)"))
            connection.execute(sa.text("INSERT INTO claimed (id) VALUES (1)"))
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT count(*) FROM claimed")).scalar_one() == 1
    finally:
        engine.dispose()


def test_database_url_is_fresh_for_one_test(database_url):
    _assert_fresh_then_claim(database_url)


def test_database_url_is_fresh_for_the_next_test_too(database_url):
    _assert_fresh_then_claim(database_url)


@pytest.mark.postgres
def test_postgres_url_is_a_live_postgresql_server(postgres_url):
    assert postgres_url.startswith("postgresql+psycopg://postgres@127.0.0.1:")
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as connection:
            assert "PostgreSQL" in connection.execute(sa.text("SELECT version()")).scalar_one()
    finally:
        engine.dispose()
