"""Who a legacy call acts for (esd-legacy-api.md §1.3): headers, then the route's body field, then
the configured default user. Permissions are then the 1.5.0 ones of the operation the route maps to, and
what a requester may see and change is the ownership policy's (`auth/access.py`, strict mode only)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request

from openesd.api.deps import SettingsDep
from openesd.api.identity import AuthDep
from openesd.auth.access import Access
from openesd.auth.principal import Principal
from openesd.auth.service import AuthService, authorize
from openesd.errors import OpenESDError, Unauthorized
from openesd.legacy.responses import LegacyError, fastapi_error, unauthorized
from openesd.settings import Settings

Refusal = Callable[[str], LegacyError]  # a permission refusal in the route's own legacy shape


class Requesters:
    def __init__(self, request: Request, auth: AuthService, settings: Settings):
        self.headers = request.headers
        self.auth = auth
        self.settings = settings

    def resolve(self, body_name: object = None) -> Principal:
        """The requester (it may not exist as a user); 401 in the gateway's shape when there is none."""
        if self.headers.get("username") or self.headers.get("authorization"):
            try:
                return self.auth.identify(self.headers)
            except OpenESDError:  # a token that is not ours, or a Bearer value that is not hex
                raise unauthorized() from None
        if self.settings.auth_mode == "strict":
            raise unauthorized()  # strict mode trusts no name that a token does not prove
        name = body_name if isinstance(body_name, str) and body_name else self.settings.legacy_default_user
        if not name:
            raise unauthorized()
        return self.auth.principal_for(name)

    def access(self, requester: Principal) -> Access:
        """What `requester` may see and change (everything in compat mode)."""
        return Access.of(self.settings.auth_mode, requester)

    def strict_requester(self) -> Principal | None:
        """The requester in strict mode (401 without a token); None in compat mode, where ESD asked for none."""
        return self.resolve() if self.settings.auth_mode == "strict" else None

    def strict_access(self, accepted: tuple[str, ...], refuse: Refusal) -> Access:
        """For a route ESD left without identity: nothing is asked or checked in compat mode; in strict mode
        the token's user (401 without one) must hold one of `accepted` (else `refuse`), and sees only what the
        ownership policy shows it."""
        if self.settings.auth_mode != "strict":
            return Access()
        requester = self.resolve()
        try:
            authorize(requester, list(accepted))
        except Unauthorized:  # a token whose user is gone
            raise unauthorized() from None
        except OpenESDError as error:
            raise refuse(error.message) from None
        return self.access(requester)


def get_requesters(request: Request, auth: AuthDep, settings: SettingsDep) -> Requesters:
    return Requesters(request, auth, settings)


RequestersDep = Annotated[Requesters, Depends(get_requesters)]


def forbidden(message: str) -> LegacyError:
    """Family F's refusal: `403 {"detail": ...}`."""
    return fastapi_error(message, 403)


def access_in_strict(*accepted: str, refuse: Refusal = forbidden) -> Any:
    """The dependency of a route ESD left without identity: `Requesters.strict_access` with the 1.5.0
    permissions of the operation it maps to (as `permitted_in_strict` for 1.5.0 routes)."""

    def dependency(requesters: RequestersDep) -> Access:
        return requesters.strict_access(accepted, refuse)

    return Depends(dependency)


def holds(principal: Principal, *accepted: str) -> bool:
    """The 1.5.0 permission stage as a yes/no: the user exists and holds one accepted string."""
    return principal.exists and principal.permissions.has_any(list(accepted))
