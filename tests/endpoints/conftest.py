"""Endpoint tests: apps on both databases, on an engine that runs no workers (rules and records), or on
the real local engine (the status machine, `make_client()`)."""

from __future__ import annotations

import pytest

from tests.api.conftest import ESDClient, make_client  # noqa: F401  (shared fixtures)
from tests.support.no_worker_engine import without_workers


@pytest.fixture
def esd(make_client) -> ESDClient:
    """An app whose endpoints stay `Creating` (no worker ever starts)."""
    client = make_client()
    client.engine = without_workers(client)
    return client


def create(esd: ESDClient, user: str = "api", **overrides):
    from tests.support.esd_jobs import endpoint_body

    return esd.post("/prod/endpoints", user=user, json=endpoint_body(**overrides))


def listed(esd: ESDClient, user: str = "api", **params) -> list[dict]:
    response = esd.get("/prod/endpoints", user=user, params={"limit": 100, **params})
    assert response.status_code == 200, response.json()
    return response.json()["data"]["endpoints"]


def message(response) -> str:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    return response.json()["message"]
