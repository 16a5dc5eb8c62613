"""Webhook signatures, Stripe's scheme: `OpenESD-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.

A receiver checks each delivery with `verify(secret, request.headers["OpenESD-Signature"], raw_body)`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from openesd.client._resource import Resource

HEADER = "OpenESD-Signature"


class WebhookVerificationError(ValueError):
    """The delivery is not signed with this secret, or was signed too long ago (a replay)."""


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of `<timestamp>.<body>` keyed with the whole secret."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The header value the server sends with `body`."""
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def _parse(header: str) -> tuple[int, list[str]]:
    timestamp, signatures = None, []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        raise WebhookVerificationError(f"{HEADER} header {header!r} has no t=<unix> and v1=<hex> parts")
    return timestamp, signatures


def verify(
    secret: str, header: str, body: bytes | str, tolerance: float = 300, now: float | None = None
) -> dict[str, Any]:
    """The delivery's decoded JSON body once its signature matches (compared in constant time) and its
    timestamp is within `tolerance` seconds of `now`; WebhookVerificationError otherwise."""
    raw = body.encode() if isinstance(body, str) else body
    timestamp, given = _parse(header)
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        raise WebhookVerificationError(f"signature timestamp {timestamp} is more than {tolerance} s away")
    expected = signature(secret, timestamp, raw).encode()
    matched = False
    for candidate in given:  # every v1 is compared: the time taken does not tell which one matched
        matched |= hmac.compare_digest(expected, candidate.encode())
    if not matched:
        raise WebhookVerificationError("no v1 signature matches this secret")
    event: dict[str, Any] = json.loads(raw)
    return event


class WebhookSecrets(Resource):
    """`/users/me/webhook-secret`: the calling user's signing secret (`client.webhook_secret`)."""

    def get(self) -> str:
        """The secret, created on first read."""
        return str(self._t.call("GET", "/users/me/webhook-secret")["secret"])

    def rotate(self) -> str:
        """A new secret; deliveries signed from now on use it, and the old one stops verifying."""
        return str(self._t.call("POST", "/users/me/webhook-secret")["secret"])
