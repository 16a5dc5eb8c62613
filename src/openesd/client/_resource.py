"""The base of every resource: a transport to call and the cursor pagination ESD lists share."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from openesd.client._transport import Transport


class Resource:
    def __init__(self, transport: Transport):
        self._t = transport

    def _cursor(self, path: str, key: str, params: dict[str, Any], limit: int | None) -> Iterator[dict]:
        """Every item of a cursor-style list (§1.9); a page may be short while more follow."""
        params = {k: v for k, v in params.items() if v is not None}
        yielded = 0
        while True:
            data = self._t.call("GET", path, params=params) or {}
            for item in data.get(key, []):
                if limit is not None and yielded >= limit:
                    return
                yielded += 1
                yield item
            cursor = data.get("last_evaluated_key")
            if not cursor or cursor == "not_applicable":
                return
            params["exclusive_start_key"] = cursor
