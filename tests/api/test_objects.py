"""Serving a stored object through a signed URL while the object is replaced (a job's live preview)."""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor

from starlette.requests import Request

from openesd.api.objects import object_response


def _send_while_replaced(path, replacement: bytes, headers: list[tuple[bytes, bytes]]) -> tuple[dict, bytes]:
    """The response's headers and body, the file being replaced right after the headers went out (where
    a reader that opens the file only then would read the new bytes under the old length)."""
    scope = {"type": "http", "method": "GET", "path": "/objects/x", "headers": headers, "query_string": b""}
    response = object_response(path, "out/job/preview/latest.jpg", Request(scope))
    sent: dict = {"headers": {}, "body": b""}

    async def receive() -> dict:
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            sent["headers"] = {k.decode(): v.decode() for k, v in message["headers"]}
            staged = path.with_suffix(".new")
            staged.write_bytes(replacement)
            os.replace(staged, path)  # as the store writes: a new file put in place
        else:
            sent["body"] += message.get("body", b"")

    # In a thread of its own: a browser test earlier in the session leaves Playwright's loop running in this one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, response(scope, receive, send)).result()
    return sent["headers"], sent["body"]


def test_an_object_replaced_while_it_is_sent_goes_out_whole_with_its_own_length(tmp_path):
    path = tmp_path / "latest.jpg"
    path.write_bytes(b"first preview " * 100)
    headers, body = _send_while_replaced(path, b"second, shorter", [])
    assert body == b"first preview " * 100
    assert headers["content-length"] == str(len(body)) and headers["content-type"] == "image/jpeg"
    assert headers["x-content-type-options"] == "nosniff" and headers["etag"]


def test_a_missing_object_is_a_404(tmp_path):
    scope = {"type": "http", "method": "GET", "path": "/objects/x", "headers": [], "query_string": b""}
    response = object_response(tmp_path / "gone.png", "out/gone.png", Request(scope))
    assert response.status_code == 404
