"""Identity and permission stages as dependencies, so no route repeats a permission check."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from openesd.api.deps import SessionDep, SettingsDep
from openesd.auth.access import Access
from openesd.auth.principal import Principal
from openesd.auth.service import AuthService, authorize


def get_auth(session: SessionDep, settings: SettingsDep) -> AuthService:
    return AuthService(session, settings.auth_mode)


AuthDep = Annotated[AuthService, Depends(get_auth)]


def identify(request: Request, auth: AuthService) -> Principal:
    """The caller as named by its headers (401 when none); it may not exist as a user. Once per request."""
    principal = getattr(request.state, "principal", None)
    if principal is None:
        principal = request.state.principal = auth.identify(request.headers)
    return principal


def get_requester(request: Request, auth: AuthDep) -> Principal:
    return identify(request, auth)


Requester = Annotated[Principal, Depends(get_requester)]


def permitted(*accepted: str) -> Any:
    """Dependency: the requester, who must exist and hold one of `accepted` (any mode)."""

    def dependency(requester: Requester) -> Principal:
        return authorize(requester, list(accepted))

    return Depends(dependency)


def permitted_in_strict(*accepted: str) -> Any:
    """Dependency for routes ESD leaves without identity: open in compat, checked in strict."""

    def dependency(request: Request, settings: SettingsDep, auth: AuthDep) -> Principal | None:
        if settings.auth_mode != "strict":
            return None
        return authorize(identify(request, auth), list(accepted))

    return Depends(dependency)


def get_access(request: Request, settings: SettingsDep, auth: AuthDep) -> Access:
    """What the requester may see and change: checked in strict mode only (auth/access.py)."""
    return Access() if settings.auth_mode != "strict" else Access.of(settings.auth_mode, identify(request, auth))


AccessDep = Annotated[Access, Depends(get_access)]
