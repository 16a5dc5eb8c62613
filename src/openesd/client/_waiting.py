"""Polling a record until it reaches a final state, with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable

from openesd.client._transport import ESDError, JobFailed


def poll(
    fetch: Callable[[], dict],
    state_of: Callable[[dict], str],
    *,
    done: set[str],
    failed: set[str],
    what: str,
    timeout: float,
    interval: float,
    on_update: Callable[[dict], None] | None = None,
) -> dict:
    """Fetch until the state is in `done` (return the record) or `failed` (raise JobFailed)."""
    deadline = time.monotonic() + timeout
    polls = 0
    while True:
        record = fetch()
        if on_update:
            on_update(record)
        state = state_of(record)
        if state in done:
            return record
        if state in failed:
            raise JobFailed(f"{what} is {state}: {failure_reason(record)}", record)
        if time.monotonic() >= deadline:
            raise ESDError(0, f"{what} still {state} after {timeout:g} s")
        # Short jobs finish in a second or two: poll fast at first, then every `interval`.
        time.sleep(min(interval, 0.1 * 1.5**polls))
        polls += 1


def failure_reason(record: dict) -> str:
    """The most specific text a failed record carries (the field differs per resource)."""
    params = record.get("params") if isinstance(record.get("params"), dict) else {}
    resp = params.get("resp") if isinstance(params.get("resp"), dict) else {}
    for value in (record.get("error"), record.get("sagemakerRaw"), resp.get("error_msg"), params.get("error")):
        if value:
            return str(value)
    return "no reason given"
