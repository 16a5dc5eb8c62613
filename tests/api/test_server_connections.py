"""A real `openesd serve` over one keep-alive connection: an oversized body is refused before it is
read, and after an unhandled 500 the connection is closed in the open (`Connection: close`)."""

from __future__ import annotations

import http.client
import sqlite3
import time

import pytest

from tests.support.server import ServerProcess

API_KEY = "connTestKey0123456789"
HEADERS = {"x-api-key": API_KEY, "username": "api"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("connections") / "data"
    process = ServerProcess(data_dir, api_keys=API_KEY)
    process.data_dir = data_dir
    yield process
    process.stop()


def test_a_declared_oversized_body_is_refused_without_reading_it(server):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    started = time.monotonic()
    connection.putrequest("POST", "/prod/roles")
    for name, value in {**HEADERS, "content-type": "application/json", "content-length": str(300 * 1024**2)}.items():
        connection.putheader(name, value)
    connection.endheaders(b'{"role_name": ')  # the other 300 MiB never come
    response = connection.getresponse()
    assert response.status == 413
    assert b"OPENESD_MAX_BODY_BYTES" in response.read()
    assert time.monotonic() - started < 5
    connection.close()


def test_after_an_unhandled_500_the_next_request_on_the_connection_works(server):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("GET", "/prod/ping", headers=HEADERS)
    assert connection.getresponse().read()
    # An operator's mishap the server cannot answer for: a table is gone.
    with sqlite3.connect(server.data_dir / "openesd.db") as database:
        database.execute("DROP TABLE roles")
    connection.request("GET", "/prod/roles", headers=HEADERS)
    failed = connection.getresponse()
    assert failed.status == 500
    assert failed.getheader("connection") == "close"
    failed.read()
    connection.request("GET", "/prod/ping", headers=HEADERS)  # raised ConnectionResetError / RemoteDisconnected
    assert connection.getresponse().status == 200
