"""An app already started by a TestClient, also served by uvicorn on a free port in a thread: the TestClient
buffers a whole response, while an event stream must be read as it is written."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn

from tests.api.conftest import API_KEY
from tests.support.server import free_port


@contextmanager
def served(app) -> Iterator[str]:
    """The base URL of `app` served live; its lifespan is the TestClient's (so `lifespan="off"`)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def read_events(url: str, headers: dict, *, stop, timeout: float = 20.0) -> list[dict]:
    """Parse `text/event-stream` from `url` until it ends or `stop(events)` says enough."""
    events: list[dict] = []
    sent = {"x-api-key": API_KEY, **headers}
    with httpx.stream("GET", url, headers=sent, timeout=timeout) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        frame: dict = {}
        for line in response.iter_lines():
            if line == "":
                if "event" in frame:
                    events.append({"id": int(frame["id"]), "event": frame["event"], "data": json.loads(frame["data"])})
                    if stop(events):
                        break
                frame = {}
            elif not line.startswith(":"):
                field, _, value = line.partition(": ")
                frame[field] = value
    return events
