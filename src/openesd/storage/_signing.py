"""HMAC-SHA256 signed URLs for the local store: the signature is the credential, as with S3.

The signed message covers the method, the key, the expiry, and for a part upload the upload id
and part number, so a URL cannot be reused for another key, method, upload or part.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urlencode

from openesd.storage.errors import SignatureError

SIGNED_PARAMS = ("method", "expires", "kh", "upload_id", "part", "signature")


@dataclass(frozen=True)
class SignedTarget:
    """What a verified URL allows: one method on one key, optionally one part of one upload."""

    method: str
    key: str
    upload_id: str | None = None
    part: int | None = None


def load_or_create_secret(path: Path) -> bytes:
    """The signing secret kept in `path`: created once with mode 0600, stable across restarts."""
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32))
    try:
        os.link(temp, path)  # fails if another process created the key first; theirs wins
    except FileExistsError:
        pass
    finally:
        temp.unlink()
    return bytes.fromhex(path.read_text().strip())


class UrlSigner:
    """Builds and checks `{base_url}/objects/{key}?...&signature=...` URLs."""

    def __init__(self, secret: bytes, base_url: str, clock: Callable[[], float] = time.time):
        self._secret = secret
        self._base_url = base_url.rstrip("/")
        self._clock = clock

    def sign(self, target: SignedTarget, expires_in: int) -> str:
        expires = int(self._clock()) + int(expires_in)
        query = {"method": target.method, "expires": str(expires), "kh": _key_hint(target.key)}
        if target.upload_id is not None:
            query |= {"upload_id": target.upload_id, "part": str(target.part)}
        query["signature"] = self._digest(target, expires)
        return f"{self._base_url}/objects/{quote(target.key, safe='/')}?{urlencode(query)}"

    def verify(self, method: str, key: str, query: dict[str, str]) -> SignedTarget:
        """The target the URL grants, or SignatureError saying exactly what is wrong with it."""
        signed_method, expires = _required(query, "method"), _expiry(query)
        if signed_method != method:
            raise SignatureError(f"this URL was signed for {signed_method}, not {method}")
        if query.get("kh") != _key_hint(key):
            raise SignatureError(f"this URL was signed for another object, not {key}")
        target = SignedTarget(method, key, query.get("upload_id"), _part(query))
        expected = self._digest(target, expires)
        if not hmac.compare_digest(expected, _required(query, "signature")):
            raise SignatureError(f"the signature of this URL for {key} does not match: it was altered")
        if expires < self._clock():
            at = datetime.fromtimestamp(expires, UTC).isoformat()
            raise SignatureError(f"this URL for {key} expired at {at}")
        return target

    def _digest(self, target: SignedTarget, expires: int) -> str:
        fields = [target.method, target.key, str(expires), target.upload_id or "", str(target.part or "")]
        return hmac.new(self._secret, "\n".join(fields).encode(), hashlib.sha256).hexdigest()


def _key_hint(key: str) -> str:
    # Only lets the server tell "URL for another key" apart from "altered signature"; not a secret.
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def _required(query: dict[str, str], name: str) -> str:
    value = query.get(name)
    if not value:
        raise SignatureError(f"this URL is not signed: the {name!r} parameter is missing")
    return value


def _expiry(query: dict[str, str]) -> int:
    raw = _required(query, "expires")
    if not _is_decimal(raw):
        raise SignatureError(f"this URL has an invalid expires value {raw!r}")
    return int(raw)


def _part(query: dict[str, str]) -> int | None:
    raw = query.get("part")
    if raw is None:
        return None
    if not _is_decimal(raw) or not 1 <= int(raw) <= 10000:
        raise SignatureError(f"this URL has an invalid part number {raw!r}")
    return int(raw)


def _is_decimal(raw: str) -> bool:
    # str.isdigit() also holds for "²" and other digits int() refuses.
    return raw.isascii() and raw.isdigit()
