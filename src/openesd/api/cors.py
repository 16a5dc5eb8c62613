"""CORS preflight for every ESD resource (esd-api.md §1.8, with `username` allowed)."""

from __future__ import annotations

from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

PREFLIGHT_HEADERS = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"OPTIONS,GET,PUT,POST,DELETE,PATCH,HEAD"),
    (
        b"access-control-allow-headers",
        b"Content-Type,X-Amz-Date,Authorization,X-Api-Key,X-Amz-Security-Token,X-Amz-User-Agent,username",
    ),
]


class PreflightMiddleware:
    """Answers `OPTIONS` on any mapped path with 204, before the API key is asked for."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "OPTIONS" and self._mapped(scope):
            await send({"type": "http.response.start", "status": 204, "headers": PREFLIGHT_HEADERS})
            await send({"type": "http.response.body", "body": b""})
            return
        await self.app(scope, receive, send)

    def _mapped(self, scope: Scope) -> bool:
        router = scope["app"].router
        return any(route.matches(scope)[0] != Match.NONE for route in router.routes)
