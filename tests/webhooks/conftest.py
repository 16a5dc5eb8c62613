"""A webhook receiver on loopback and an app (each database) whose jobs the tests drive through the reporter."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.api.conftest import make_client  # noqa: F401  (shared fixture)
from tests.checkpoints.conftest import upload_file
from tests.inferences.test_rules import endpoint
from tests.support.model_files import model_file_bytes
from tests.support.no_worker_engine import without_workers


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Answers each POST with the next of `answers` (status, headers), then with the last one forever."""

    port: int
    answers: list[tuple[int, dict[str, str]]] = field(default_factory=lambda: [(200, {})])
    received: list[Received] = field(default_factory=list)
    delay_s: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            time.sleep(receiver.delay_s)
            with lock:
                receiver.received.append(Received(self.path, dict(self.headers), body))
                index = min(len(receiver.received), len(receiver.answers)) - 1
            status, headers = receiver.answers[index]
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            answer = f"answer {status}".encode()
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args) -> None:
            pass

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(found := Receiver(0)))
    found.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield found
    server.shutdown()
    server.server_close()


@pytest.fixture
def esd(make_client):
    """Private webhooks allowed (the receiver is on loopback); no background dispatcher: tests run their own."""
    client = make_client(realtime_timeout_s=0.5, allow_private_webhooks=True, webhook_poll_s=0)
    client.engine = without_workers(client, ready=True)
    upload_file(client, "m.safetensors", model_file_bytes(), 1, "Stable-diffusion")
    endpoint(client)
    return client
