"""Checkpoint tests: an app per test on the local store or the S3 test server, and HTTP helpers."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator

import httpx
import pytest

from tests.api.conftest import ESDClient, esd, make_client  # noqa: F401  (shared fixtures)
from tests.support.model_files import model_file_bytes


def put_part(esd: ESDClient, url: str, data: bytes) -> httpx.Response:
    """PUT raw bytes to a signed URL as an ESD client does (the app's own URLs go through TestClient)."""
    if url.startswith("http://testserver"):
        return esd.http.put(url, content=data)
    return httpx.put(url, content=data, timeout=60)


def get_url(esd: ESDClient, url: str) -> httpx.Response:
    if url.startswith("http://testserver"):
        return esd.http.get(url)
    return httpx.get(url, timeout=60)


def upload_file(
    esd: ESDClient, name: str, data: bytes, parts: int, checkpoint_type: str = "Lora", user: str = "api"
) -> dict:
    """The whole ESD client flow: create, PUT each chunk, complete with the collected ETags."""
    created = esd.post(
        "/prod/checkpoints",
        user=user,
        json={
            "checkpoint_type": checkpoint_type,
            "params": {"message": "test"},
            "filenames": [{"filename": name, "parts_number": parts}],
        },
    )
    assert created.status_code == 201, created.json()
    checkpoint = created.json()["data"]["checkpoint"]
    urls = created.json()["data"]["s3PresignUrl"][name]
    size = -(-len(data) // parts)
    tags = []
    for number, url in enumerate(urls, start=1):
        response = put_part(esd, url, data[(number - 1) * size : number * size])
        assert response.status_code == 200, response.text
        tags.append({"ETag": response.headers["ETag"], "PartNumber": number})
    done = esd.put(f"/prod/checkpoints/{checkpoint['id']}", json={"status": "Active", "multi_parts_tags": {name: tags}})
    assert done.status_code == 200, done.json()
    return done.json()["data"]["checkpoint"]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FileServer:
    """A local HTTP server for URL imports; `/drop/...` sends half the bytes and hangs up."""

    def __init__(self, files: dict[str, bytes]):
        files_ = files
        self.requests: list[str] = []  # "METHOD path" of every request received
        requests = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self._answer(body=False)

            def do_GET(self):
                self._answer(body=True)

            def _answer(self, body: bool):
                requests.append(f"{self.command} {self.path}")
                name = self.path.rsplit("/", 1)[-1]
                if name not in files_:
                    self.send_response(404)
                    self.end_headers()
                    return
                data = files_[name]
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data[: len(data) // 2] if self.path.startswith("/drop/") else data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    tiny = model_file_bytes("lora", "sd1", padding=50_000, salt="tiny")
    payloads = {
        "tiny.safetensors": tiny,
        "half.safetensors": model_file_bytes("lora", padding=200_000, salt="half"),
        "truncated.safetensors": tiny[: len(tiny) // 2],
    }  # served whole: a truncated file, not a cut download
    server = FileServer(payloads)
    server.payloads = payloads
    yield server
    server.close()
