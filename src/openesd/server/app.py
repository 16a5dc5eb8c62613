"""The FastAPI application: the ESD surface (at the root and under the stage prefix) and our own routes."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI

from openesd import __version__, console, legacy
from openesd.api import metrics, objects, ping, system
from openesd.api.inputs import InputLimits
from openesd.api.cors import PreflightMiddleware
from openesd.api.errors import install_error_handlers
from openesd.api.gateway import require_api_key
from openesd.api.openapi import install_openapi
from openesd.server.runtime import Runtime, boot
from openesd.checkpoints import routes as checkpoints
from openesd.datasets import routes as datasets
from openesd.endpoints import routes as endpoints
from openesd.inferences import routes as inferences
from openesd.jobevents import routes as jobevents
from openesd.roles import routes as roles
from openesd.sdapi import routes as sdapi
from openesd.settings import Settings, get_settings
from openesd.tokens import routes as tokens
from openesd.trainings import routes as trainings
from openesd.users import routes as users
from openesd.webhooks import routes as webhooks

ESD_ROUTERS = (
    ping.router,
    roles.router,
    users.router,
    tokens.router,
    checkpoints.router,
    endpoints.router,
    inferences.router,
    datasets.router,
    trainings.router,
    webhooks.router,
    jobevents.router,
)


def esd_router() -> APIRouter:
    """Every ESD route, behind the API key (stage 2 of esd-api.md §1.2)."""
    router = APIRouter(dependencies=[Depends(require_api_key)])
    for child in ESD_ROUTERS:
        router.include_router(child)
    return router


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state = runtime or boot(settings)
        app.state.runtime = state
        app.state.sessionmaker = state.sessionmaker
        app.state.store = state.store
        app.state.api_keys = state.api_keys
        app.state.password_cipher = state.password_cipher
        state.start_background()
        yield
        state.event_bell.close()  # on the event loop: its task belongs there
        if runtime is None:
            state.close()

    app = FastAPI(title="OpenESD", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    surface = esd_router()
    app.include_router(surface)
    if settings.stage_prefix:
        app.include_router(surface, prefix=settings.stage_prefix)
    app.include_router(system.router)
    app.include_router(objects.router)
    app.include_router(metrics.router)
    app.include_router(console.router)
    legacy.install(app, settings)
    sdapi.install(app, settings.sdapi_enabled)  # outside the API key: WebUI clients send none
    install_error_handlers(app)
    install_openapi(app)
    app.add_middleware(PreflightMiddleware)
    app.add_middleware(InputLimits, settings=settings)  # outermost: before any middleware reads a body
    app.add_middleware(metrics.MetricsMiddleware)  # added last, so outermost: counts every answer; reads no body
    return app
