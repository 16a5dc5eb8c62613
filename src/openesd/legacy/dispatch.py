"""Body-shape dispatch of `POST`/`DELETE /endpoints` on the primary mount (esd-legacy-api.md §3.2).

A legacy body is routed to the legacy mount's handler; every other body reaches the 1.5.0 route
unchanged (so 1.5.0 validation answers malformed 1.5.0 requests as before)."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from openesd.api.inputs import parse_json


def is_legacy(method: str, body: object) -> bool:
    if not isinstance(body, dict):
        return False
    if method == "POST":
        return "endpoint_type" not in body and ("delete_endpoint_list" in body or "instance_type" in body)
    return "endpoint_name_list" not in body and "delete_endpoint_list" in body


class EndpointsDispatch:
    def __init__(self, app: ASGIApp, paths: list[str], target: str):
        self.app = app
        self.paths = set(paths)
        self.target = target

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "DELETE") or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        raw = await _read_body(receive)
        try:
            body = parse_json(raw) if raw.strip() else {}
        except ValueError:  # the route the body reaches refuses it, by its own rules
            body = None
        if is_legacy(scope["method"], body):
            scope = {**scope, "path": self.target, "raw_path": self.target.encode()}
        await self.app(scope, _replay(raw, receive), send)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(raw: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        return await receive()

    return replay


class ListMirror:
    """`legacy_mirror_list_keys` (§3.2, off by default): a 1.5.0 answer of `GET /endpoints`, `/checkpoints`
    or `/datasets` also carries its page of items under the legacy top-level key, next to `data`."""

    def __init__(self, app: ASGIApp, paths: dict[str, str]):
        self.app = app
        self.paths = paths  # path -> list key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = self.paths.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "GET" else None
        if key is None:
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def collect(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = _mirrored(b"".join(chunks), key)
            headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, collect)


def _mirrored(raw: bytes, key: str) -> bytes:
    try:
        answer = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return raw
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, dict) or key not in data:
        return raw  # an error answer: unchanged
    return json.dumps({**answer, key: data[key]}).encode()
