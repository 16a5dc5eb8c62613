"""OpenESD's own health routes, outside the ESD API-key rules."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from openesd.api.deps import SessionDep, StoreDep

router = APIRouter(tags=["system"])


@router.get("/healthz", response_model=None)  # the annotation is for mypy: no response model, as before
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(session: SessionDep, store: StoreDep) -> JSONResponse:
    checks = {
        "database": _check(lambda: session.execute(text("SELECT 1"))),
        "object_store": _check(lambda: store.stat("openesd-readyz-probe")),
    }
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


def _check(probe: Callable[[], object]) -> str:
    try:
        probe()
    except Exception as error:  # a readiness probe reports any failure instead of raising
        return f"error: {error}"
    return "ok"
