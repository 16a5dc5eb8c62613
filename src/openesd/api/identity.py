"""Identity and permission stages as dependencies, so no route repeats a permission check."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from openesd.api.deps import SessionDep, SettingsDep
from openesd.auth.principal import Principal
from openesd.auth.service import AuthService, authorize


def get_auth(session: SessionDep, settings: SettingsDep) -> AuthService:
    return AuthService(session, settings.auth_mode)


AuthDep = Annotated[AuthService, Depends(get_auth)]


def get_requester(request: Request, auth: AuthDep) -> Principal:
    """The caller as named by its headers (401 when none); it may not exist as a user."""
    return auth.identify(request.headers)


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
        return authorize(auth.identify(request.headers), list(accepted))

    return Depends(dependency)
