"""`GET /ping` (esd-api.md §3)."""

from fastapi import APIRouter, Response

from openesd.api.envelope import esd_response

router = APIRouter(tags=["ping"])


@router.get("/ping")
def ping() -> Response:
    return esd_response(200, message="pong")
