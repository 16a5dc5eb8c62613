"""Identity and permission stages as dependencies, so no route repeats a permission check."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from openesd.api.deps import SessionDep, SettingsDep, read
from openesd.auth.access import Access
from openesd.auth.principal import Principal
from openesd.auth.service import AuthService, authorize


# These stages are `async def` and run only the database reads of `identify` through `read` (in place on
# SQLite, in the thread pool on PostgreSQL): a plain `def` dependency costs a thread hop per request even in
# compat mode, where nothing is read.
async def get_auth(session: SessionDep, settings: SettingsDep) -> AuthService:
    return AuthService(session, settings.auth_mode)


AuthDep = Annotated[AuthService, Depends(get_auth)]


def identify(request: Request, auth: AuthService) -> Principal:
    """The caller as named by its headers (401 when none); it may not exist as a user. Once per request."""
    principal = getattr(request.state, "principal", None)
    if principal is None:
        principal = request.state.principal = auth.identify(request.headers)
    return principal


async def identified(request: Request, auth: AuthService) -> Principal:
    """`identify` from a coroutine, once per request. Its reads run through `read`; a token's `last_used`
    step it may set is written with the request's commit, in the thread pool."""
    principal = getattr(request.state, "principal", None)
    return principal if principal is not None else await read(auth.session, identify, request, auth)


async def get_requester(request: Request, auth: AuthDep) -> Principal:
    return await identified(request, auth)


Requester = Annotated[Principal, Depends(get_requester)]


def permitted(*accepted: str) -> Any:
    """Dependency: the requester, who must exist and hold one of `accepted` (any mode)."""

    async def dependency(requester: Requester) -> Principal:
        return authorize(requester, list(accepted))

    return Depends(dependency)


def permitted_in_strict(*accepted: str) -> Any:
    """Dependency for routes ESD leaves without identity: open in compat, checked in strict."""

    async def dependency(request: Request, settings: SettingsDep, auth: AuthDep) -> Principal | None:
        if settings.auth_mode != "strict":
            return None
        return authorize(await identified(request, auth), list(accepted))

    return Depends(dependency)


async def get_access(request: Request, settings: SettingsDep, auth: AuthDep) -> Access:
    """What the requester may see and change: checked in strict mode only (auth/access.py)."""
    if settings.auth_mode != "strict":
        return Access()
    return Access.of(settings.auth_mode, await identified(request, auth))


AccessDep = Annotated[Access, Depends(get_access)]
