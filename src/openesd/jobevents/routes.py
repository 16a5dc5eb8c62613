"""`GET /events` (every job the requester sees) and the helpers the job routes' `/{id}/events` share."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from openesd.api.deps import EventBellDep, SessionmakerDep, SettingsDep, StoreDep
from openesd.api.identity import AccessDep, permitted_in_strict
from openesd.auth.principal import Principal
from openesd.errors import BadRequest
from openesd.jobevents.stream import EventStreams, Scope

router = APIRouter(tags=["events"])
# Proxies (nginx) buffer responses unless told not to; an event stream must go out as written.
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def get_event_streams(
    bell: EventBellDep, make_session: SessionmakerDep, store: StoreDep, settings: SettingsDep
) -> EventStreams:
    return EventStreams(bell, make_session, store, settings.signed_url_ttl_s)


Streams = Annotated[EventStreams, Depends(get_event_streams)]


def last_event_id(request: Request) -> int:
    """The `Last-Event-ID` header a reconnecting EventSource sends, or the `last_event_id` query (polyfills
    that cannot set headers); 0 replays every stored event."""
    raw = request.headers.get("last-event-id") or request.query_params.get("last_event_id") or "0"
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise BadRequest(f"Last-Event-ID {raw!r} should be an event id (a whole number >= 0)")
    return value


def event_stream(streams: EventStreams, scope: Scope, request: Request, *, ended: bool = False) -> StreamingResponse:
    """`text/event-stream` of `scope`, resumed after the request's last event id."""
    body = streams.follow(scope, last_event_id(request), ended=ended)
    return StreamingResponse(body, media_type="text/event-stream", headers=STREAM_HEADERS)


@router.get("/events")
async def all_events(
    _: Annotated[Principal | None, permitted_in_strict("inference:all", "inference:list", "train:all")],
    access: AccessDep,
    streams: Streams,
    request: Request,
    username: str | None = None,
) -> StreamingResponse:
    """The jobs the requester may list: their own in strict mode (all for an administrator), all in compat
    mode, or with `username` only that user's jobs (as the listings' `username` narrows them)."""
    owners = access.sharing_names()
    if username is not None:
        owners = frozenset({username}) if owners is None else owners & {username}
    return event_stream(streams, Scope(owners=owners), request)
