"""Who a legacy call acts for (esd-legacy-api.md §1.3): headers, then the route's body field, then
the configured default user. Permissions are then the 1.5.0 ones of the operation the route maps to."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from openesd.api.deps import SettingsDep
from openesd.api.identity import AuthDep
from openesd.auth.principal import Principal
from openesd.auth.service import AuthService
from openesd.errors import OpenESDError
from openesd.legacy.responses import unauthorized
from openesd.settings import Settings


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


def get_requesters(request: Request, auth: AuthDep, settings: SettingsDep) -> Requesters:
    return Requesters(request, auth, settings)


RequestersDep = Annotated[Requesters, Depends(get_requesters)]


def holds(principal: Principal, *accepted: str) -> bool:
    """The 1.5.0 permission stage as a yes/no: the user exists and holds one accepted string."""
    return principal.exists and principal.permissions.has_any(list(accepted))
