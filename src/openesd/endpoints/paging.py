"""Cursor paging of ESD listings: `limit` visible items a page, `exclusive_start_key` = base64 JSON key."""

from __future__ import annotations

import base64
import binascii
import json
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
    if not isinstance(key, dict) or not isinstance(key.get("id"), str) or not isinstance(key.get("t"), int | float):
        raise BadRequest(f"exclusive_start_key {value!r} is not a key returned by this listing")
    return key


def page(items: Iterable[Item], key_of: Callable[[Item], dict], limit: int,
         exclusive_start_key: str | None) -> tuple[list[Item], str | None]:
    """Up to `limit` items after the cursor, and the cursor of the next page (None when exhausted).

    `items` come newest first; a key is `{"t": sort time, "id": …}`, so paging survives deletions.
    """
    if limit < 1:
        raise BadRequest(f"limit must be at least 1, got {limit}")
    items = list(items)
    if exclusive_start_key:
        start = decode_key(exclusive_start_key)
        after = (start["t"], start["id"])
        items = [item for item in items if (key_of(item)["t"], key_of(item)["id"]) < after]
    chosen = items[:limit]
    more = len(items) > limit
    return chosen, encode_key(key_of(chosen[-1])) if more else None
