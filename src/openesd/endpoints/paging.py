"""Cursor paging of ESD listings: `limit` visible items a page, `exclusive_start_key` = base64 JSON key."""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Iterable
from typing import TypeVar

from openesd.errors import BadRequest

Item = TypeVar("Item")


def encode_key(key: dict) -> str:
    return base64.b64encode(json.dumps(key, separators=(",", ":")).encode()).decode()


def decode_key(value: str) -> dict:
    try:
        key = json.loads(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        key = None
    if not isinstance(key, dict) or not _storable(key.get("id")) or not _finite(key.get("t")):
        raise BadRequest(f"exclusive_start_key {value!r} is not a key returned by this listing")
    return key


def _storable(name: object) -> bool:
    """A string a database can compare: valid UTF-8 (no lone surrogate) and no NUL (PostgreSQL refuses it)."""
    if not isinstance(name, str) or "\x00" in name:
        return False
    try:
        name.encode()
    except UnicodeEncodeError:
        return False
    return True


def _finite(t: object) -> bool:
    """A sort time a database can compare: a float (as listings write them) or an int that fits one."""
    try:
        return isinstance(t, int | float) and math.isfinite(t)
    except OverflowError:  # an int too large for a float
        return False


def start_after(limit: int, exclusive_start_key: str | None) -> tuple[float, str] | None:
    """Check `limit`; the (sort time, id) that a page starts after, None for the first page."""
    if limit < 1:
        raise BadRequest(f"limit must be at least 1, got {limit}")
    if not exclusive_start_key:
        return None
    start = decode_key(exclusive_start_key)
    return float(start["t"]), start["id"]


def cut(items: list[Item], key_of: Callable[[Item], dict], limit: int) -> tuple[list[Item], str | None]:
    """The page out of the items after the cursor (one more than `limit` tells that another page follows)."""
    chosen = items[:limit]
    return chosen, encode_key(key_of(chosen[-1])) if len(items) > limit else None


def page(
    items: Iterable[Item], key_of: Callable[[Item], dict], limit: int, exclusive_start_key: str | None
) -> tuple[list[Item], str | None]:
    """Up to `limit` items after the cursor, and the cursor of the next page (None when exhausted).

    `items` come newest first; a key is `{"t": sort time, "id": …}`, so paging survives deletions.
    """
    after = start_after(limit, exclusive_start_key)
    items = list(items)
    if after is not None:
        items = [item for item in items if (key_of(item)["t"], key_of(item)["id"]) < after]
    return cut(items, key_of, limit)
