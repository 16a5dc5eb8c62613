"""The 2023-07-05 legacy ESD routes (esd-legacy-api.md), served over the 1.5.0 services.

`install` adds the legacy mount (every legacy route, legacy semantics), the non-colliding routes on
the primary mount (root and stage prefix) and the body dispatch of `POST`/`DELETE /endpoints`."""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI

from openesd.api.gateway import require_api_key
from openesd.settings import Settings


def _surface(with_colliding: bool) -> APIRouter:
    from openesd.legacy import checkpoint_routes, endpoint_routes, inference_routes, training_routes

    router = APIRouter(dependencies=[Depends(require_api_key)])
    modules = (inference_routes, endpoint_routes, checkpoint_routes, training_routes)
    for module in modules:
        router.include_router(module.router)
    if with_colliding:
        for module in modules:
            if hasattr(module, "colliding"):
                router.include_router(module.colliding)
        router.include_router(training_routes.top_level)  # `/{dataset_name}/data` last: it matches widely
    return router


def install(app: FastAPI, settings: Settings) -> None:
    """Serve the legacy layer as the settings say (§3.4)."""
    if not settings.legacy_enabled:
        return
    from openesd.legacy.dispatch import EndpointsDispatch, ListMirror
    from openesd.legacy.responses import LegacyError, render_legacy_error

    app.add_exception_handler(LegacyError, render_legacy_error)
    app.include_router(_surface(with_colliding=True), prefix=settings.legacy_mount)
    if not settings.legacy_on_primary_mount:
        return
    primary = _surface(with_colliding=False)
    prefixes = ["", *([settings.stage_prefix] if settings.stage_prefix else [])]
    for prefix in prefixes:
        app.include_router(primary, prefix=prefix)
    app.add_middleware(
        EndpointsDispatch, paths=[f"{p}/endpoints" for p in prefixes], target=f"{settings.legacy_mount}/endpoints"
    )
    if settings.legacy_mirror_list_keys:
        app.add_middleware(
            ListMirror, paths={f"{p}/{key}": key for p in prefixes for key in ("endpoints", "checkpoints", "datasets")}
        )
