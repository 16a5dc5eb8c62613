"""A real uvicorn server on a free port, serving the signed-object router for the local store."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from fastapi import FastAPI

from openesd.api.objects import router


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def objects_app() -> FastAPI:
    app = FastAPI()
    app.include_router(router)
    return app


@pytest.fixture(scope="session")
def objects_server(objects_app: FastAPI) -> Iterator[str]:
    """Base URL of uvicorn serving `objects_app`; each test sets `app.state.store` to its store."""
    port = free_port()
    config = uvicorn.Config(objects_app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start for the object routes")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def store_settings(settings_factory, objects_server):
    # Signed URLs of the local store must point at the live server above.
    return settings_factory(public_url=objects_server)


@pytest.fixture(autouse=True)
def _serve_test_store(request, objects_app: FastAPI) -> Iterator[None]:
    if "object_store" in request.fixturenames:
        objects_app.state.store = request.getfixturevalue("object_store")
    yield
    objects_app.state.store = None
