"""Server-Sent Events from the job event routes: parsed, resumed with Last-Event-ID after a dropped connection,
and `wait` (the SDK's `wait_for` on the stream, polling on a server without the routes)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from openesd.client._transport import ESDError, JobFailed, Transport, error_message
from openesd.client._waiting import failure_reason, poll

TERMINAL = ("succeeded", "failed", "cancelled")
RECONNECTS = 5  # in a row without an event in between: then the server is taken as gone


@dataclass(frozen=True)
class JobEvent:
    """One event: `id` resumes a stream after it, `kind` is `queued`, `step`, `succeeded`..."""

    id: int
    kind: str
    data: dict[str, Any] = field(default_factory=dict)


class EventsNotServed(ESDError):
    """The server answered 404 for an events route: an older server (or a job it hides)."""


def follow(
    transport: Transport, path: str, last_event_id: int | None = None, deadline: float | None = None
) -> Iterator[JobEvent]:
    """The events of `path` as they come; a dropped connection is resumed after the last event received.
    A single job's stream ends after its terminal event; the per-user one runs until `deadline`."""
    failures = 0
    while True:
        try:
            for event in _read(transport, path, last_event_id, deadline):
                failures, last_event_id = 0, event.id
                yield event
            return  # the server ended the stream
        except httpx.TransportError as error:
            failures += 1
            if failures > RECONNECTS:
                raise ESDError(0, f"the event stream {path} keeps dropping: {error}") from error
            time.sleep(min(0.2 * 2**failures, 5.0))


def _read(transport: Transport, path: str, last_event_id: int | None, deadline: float | None) -> Iterator[JobEvent]:
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    with transport.api.stream("GET", path, headers=headers) as response:
        if response.status_code >= 400:
            response.read()
            error = EventsNotServed if response.status_code == 404 else ESDError
            raise error(response.status_code, error_message(response))
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            response.read()  # a server (or proxy) that answers something else at this path has no events
            raise EventsNotServed(response.status_code, f"{path} is not an event stream")
        frame: dict[str, str] = {}
        for line in response.iter_lines():
            if deadline is not None and time.monotonic() > deadline:
                raise ESDError(0, f"{path} did not end in time")
            if line:
                if not line.startswith(":"):  # a comment: the server's heartbeat
                    name, _, value = line.partition(":")
                    frame[name] = value.removeprefix(" ")
                continue
            if "event" in frame and "id" in frame:
                yield JobEvent(int(frame["id"]), frame["event"], json.loads(frame.get("data") or "{}"))
            frame = {}


def wait(
    transport: Transport,
    path: str,
    fetch: Callable[[], dict[str, Any]],
    *,
    record_of: Callable[[JobEvent], dict[str, Any] | None],
    done: set[str],
    failed: set[str],
    state_of: Callable[[dict[str, Any]], str],
    what: str,
    timeout: float,
    interval: float,
    on_update: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Follow the job's stream until its terminal event, then read its record once (returned when `done`, else
    JobFailed); `poll` every `interval` instead when the server has no event routes. `record_of` turns an event
    into the record shape `on_update` gets (None: nothing to show)."""

    def polling() -> dict[str, Any]:
        return poll(
            fetch,
            state_of,
            done=done,
            failed=failed,
            what=what,
            timeout=timeout,
            interval=interval,
            on_update=on_update,
        )

    deadline = time.monotonic() + timeout
    ended = False
    try:
        for event in follow(transport, path, deadline=deadline):
            shown = record_of(event)
            if on_update is not None and shown is not None:
                on_update(shown)
            if event.kind in TERMINAL:
                ended = True
                break
    except EventsNotServed:
        return polling()
    if not ended:  # the stream closed without the job's end (its events were pruned): the record decides
        return polling()
    record = fetch()
    if on_update is not None:
        on_update(record)
    state = state_of(record)
    if state not in done:
        raise JobFailed(f"{what} is {state}: {failure_reason(record)}", record)
    return record
