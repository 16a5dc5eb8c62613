"""Request bodies the gateway refuses before any handler runs: too large, nested too deeply, or holding
strings that are not valid Unicode. Every route that reads a JSON body, legacy ones included, goes
through here, so bad input is a 4xx that names what is wrong, never a 500.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any
from urllib.parse import parse_qsl

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from openesd.api.envelope import gateway_response
from openesd.settings import Settings

MAX_DEPTH = 64  # objects and arrays inside each other; real WebUI payloads nest under 10
# The routes whose bodies carry WebUI payloads with base64 images (esd-api.md §14, legacy §4).
PAYLOAD_ROUTES = ("/inferences", "/inference/v2", "/inference-api/inference")
# The AUTOMATIC1111 API's routes that carry images (sdapi/), served at the root only.
WEBUI_PAYLOAD_ROUTES = tuple(
    f"/sdapi/v1/{name}" for name in ("txt2img", "img2img", "extra-single-image", "extra-batch-images", "png-info")
) + ("/rembg",)

# A JSON string (its closing quote optional, so an unterminated one is consumed once, not rescanned
# from every later quote) or a bracket. Scanning with it counts nesting without parsing or recursion.
_STRING_OR_BRACKET = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[{]|[\]}]', re.DOTALL)
_NOT_STORABLE = re.compile("[\ud800-\udfff\x00]")


class BodyTooLarge(Exception):
    def __init__(self, limit: int, setting: str):
        super().__init__(limit, setting)
        self.limit, self.setting = limit, setting

    def response(self) -> Response:
        env = f"OPENESD_{self.setting.upper()}"
        return gateway_response(
            413,
            f"Request body is larger than {self.limit} bytes, the limit of this route; "
            f"the server's operator sets it with {env}",
            with_status_code=True,
        )


class InputLimits:
    """What the gateway refuses before routing: a body over its route's cap (the declared Content-Length
    before reading, the bytes received for chunked bodies, so an oversized body is never held in
    memory), and a path or query parameter holding NUL (`%00`), which no stored text may hold.

    Signed-URL uploads (`/objects/…`) stream to disk and check their keys themselves: not capped here.
    """

    def __init__(self, app: ASGIApp, settings: Settings):
        self.app = app
        prefixes = {"", settings.stage_prefix, settings.legacy_mount}
        payload_paths = {prefix + path for prefix in prefixes for path in PAYLOAD_ROUTES}
        self.payload_paths = payload_paths | set(WEBUI_PAYLOAD_ROUTES)
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/objects/"):
            await self.app(scope, receive, send)
            return
        problem = _url_problem(scope)
        if problem is not None:
            await gateway_response(400, f"[{problem}]", with_status_code=True)(scope, receive, send)
            return
        setting = "max_payload_body_bytes" if scope["path"] in self.payload_paths else "max_body_bytes"
        too_large = BodyTooLarge(getattr(self.settings, setting), setting)
        if _declared_length(scope) > too_large.limit:
            await too_large.response()(scope, receive, send)
            return
        await self._capped(scope, receive, send, too_large)

    async def _capped(self, scope: Scope, receive: Receive, send: Send, too_large: BodyTooLarge) -> None:
        received, started = 0, False

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > too_large.limit:
                raise too_large
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, capped_receive, watched_send)
        except BodyTooLarge:
            if started:
                raise
            await too_large.response()(scope, receive, send)


def _declared_length(scope: Scope) -> int:
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit():
            return int(value)
    return 0


def _url_problem(scope: Scope) -> str | None:
    # The server decodes `%..` with replacement characters, so no surrogate gets here; NUL does.
    if "\x00" in scope["path"]:
        return "the path contains the NUL character \\u0000 (%00), which no stored text may hold"
    for name, value in parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return (
                f"query parameter {json.dumps(name)} contains the NUL character \\u0000 (%00), "
                "which no stored text may hold"
            )
    return None


def parse_json(raw: bytes) -> Any:
    """The decoded body; ValueError when it is not JSON, `BadBody` when it nests too deeply or holds a
    string no name, prompt or path may hold. `Infinity` is read as a float, as ESD's parser does (§14)."""
    _check_depth(raw)
    value = json.loads(raw, parse_constant=_json_constant)
    _check_strings(value)
    return value


class BadBody(ValueError):
    """Decodable JSON that the gateway still refuses; `message` names the place, fge style."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def _check_depth(raw: bytes) -> None:
    depth = 0
    for token in _STRING_OR_BRACKET.finditer(raw):
        char = token.group()[:1]
        if char in (b"[", b"{"):
            depth += 1
            if depth > MAX_DEPTH:
                raise BadBody(f"instance nests objects and arrays deeper than allowed (maximum depth: {MAX_DEPTH})")
        elif char in (b"]", b"}"):
            depth -= 1


def _json_constant(name: str) -> float:
    if name == "Infinity":
        return math.inf
    if name == "-Infinity":
        return -math.inf
    raise ValueError(f"{name} is not a valid JSON number")


def _check_strings(value: Any) -> None:
    """Every key and string, walked without recursion: lone UTF-16 surrogates cannot be stored or
    encoded as UTF-8, and PostgreSQL refuses NUL in text."""
    pending: list[tuple[str, Any]] = [("instance", value)]
    while pending:
        where, item = pending.pop()
        if isinstance(item, str):
            _check_string(where, item)
        elif isinstance(item, dict):
            for key, child in item.items():
                _check_string(f"{where} key {json.dumps(key)}", key)
                pending.append((f"{where}.{key}", child))
        elif isinstance(item, list):
            pending.extend((f"{where}[{index}]", child) for index, child in enumerate(item))


def _check_string(where: str, text: str) -> None:
    found = _NOT_STORABLE.search(text)
    if found is None:
        return
    char = found.group()
    if char == "\x00":
        raise BadBody(
            f"{where} contains the NUL character \\u0000 (at index {found.start()}), which no stored text may hold"
        )
    raise BadBody(
        f"{where} is not valid Unicode: it holds the lone UTF-16 surrogate \\u{ord(char):04x} "
        f"(at index {found.start()})"
    )
