"""An app on a fresh data directory per test, spoken to through FastAPI's TestClient."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from openesd.server.app import create_app
from tests.conftest import IsolatedSettings

API_KEY = "0123456789abcdefABCD"


def make_settings(tmp_path, **overrides) -> IsolatedSettings:
    values = {"data_dir": tmp_path / "data", "api_keys": [API_KEY], "public_url": "http://testserver"}
    values.update(overrides)
    return IsolatedSettings(**values)


class ESDClient:
    """TestClient that sends the API key and, when given, a `username` header."""

    def __init__(self, client: TestClient):
        self.http = client

    def call(
        self,
        method: str,
        path: str,
        *,
        user: str | None = None,
        key: str | None = API_KEY,
        json=None,
        headers: dict | None = None,
        **kwargs,
    ):
        sent = dict(headers or {})
        if key is not None:
            sent["x-api-key"] = key
        if user is not None:
            sent["username"] = user
        return self.http.request(method, path, json=json, headers=sent, **kwargs)

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, **kw):
        return self.call("POST", path, **kw)

    def put(self, path, **kw):
        return self.call("PUT", path, **kw)

    def delete(self, path, **kw):
        return self.call("DELETE", path, **kw)


@pytest.fixture
def make_client(tmp_path, database_url) -> Iterator[Callable[..., ESDClient]]:
    """Apps on a fresh database of each backend (SQLite file, PostgreSQL database)."""
    clients: list[TestClient] = []

    def build(**overrides) -> ESDClient:
        client = TestClient(create_app(make_settings(tmp_path, database_url=database_url, **overrides)))
        client.__enter__()
        clients.append(client)
        return ESDClient(client)

    yield build
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def esd(make_client) -> ESDClient:
    return make_client()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def module_app(request, tmp_path_factory) -> Iterator:
    """One started app per backend for a whole module (many requests, no state between them that
    matters), its engine a `NoWorkerEngine`; URL imports give up at once instead of waiting."""
    from tests.support.no_worker_engine import without_workers

    tmp_path = tmp_path_factory.mktemp("app")
    name = f"test_{uuid.uuid4().hex[:16]}"
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'openesd.db'}"
    else:
        server = request.getfixturevalue("postgres_server")
        server.admin(f'CREATE DATABASE "{name}"')
        url = server.url(name)
    app = create_app(make_settings(tmp_path, database_url=url, legacy_upload_wait_seconds=0))
    with TestClient(app) as client:
        without_workers(ESDClient(client))
        yield app
    if request.param == "postgres":
        server.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
