"""One real server for the SDK tests that need HTTP end to end."""

from __future__ import annotations

import pytest

from openesd.client import Client
from tests.support.server import API_KEY, start_test_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    process = start_test_server(tmp_path_factory)
    yield process
    process.stop()


@pytest.fixture
def client(server):
    with Client(server.base, API_KEY) as sdk:
        yield sdk
