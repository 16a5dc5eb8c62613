"""Who calls the WebUI API: HTTP Basic (the WebUI's `--api-auth user:password`, checked against OpenESD's users
and passwords under the login throttle) or `Authorization: Bearer <personal token>`. WebUI clients send no
`x-api-key` and no `username` header, so neither is asked for or read here."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import Depends, Request

from openesd.api.deps import PasswordCipherDep, SessionDep, SessionmakerDep, SettingsDep
from openesd.api.identity import AuthDep
from openesd.auth.passwords import Passwords
from openesd.auth.principal import Principal
from openesd.auth.service import TOKEN_PREFIX, authorize
from openesd.errors import Unauthorized
from openesd.tokens.service import TokenService
from openesd.tokens.throttle import LoginThrottle

CHALLENGE = {"WWW-Authenticate": 'Basic realm="OpenESD"'}


class WebUIUnauthorized(Unauthorized):
    """401 with the Basic challenge, so that a browser or a client library offers its credentials."""

    def __init__(self, message: str):
        super().__init__(message)
        self.headers = CHALLENGE


def basic_credentials(header: str) -> tuple[str, str]:
    """(user, password) of an `Authorization: Basic …` value; 401 naming what is wrong with it."""
    try:
        decoded = base64.b64decode(header.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise WebUIUnauthorized("Authorization: Basic must carry base64 of user:password") from None
    user, colon, password = decoded.partition(":")
    if not colon or not user:
        raise WebUIUnauthorized("Authorization: Basic must carry base64 of user:password")
    return user, password


async def get_webui_login(
    session: SessionDep, settings: SettingsDep, auth: AuthDep, cipher: PasswordCipherDep, make_session: SessionmakerDep
) -> TokenService:
    """`POST /tokens`' password check, throttled in both modes: no API key stands in front of the WebUI API,
    so unlike ESD's compat logins, its guesses at a password are counted here whatever the mode."""
    return TokenService(session, auth, Passwords(cipher, settings.auth_mode), LoginThrottle(make_session, settings))


def get_webui_caller(
    request: Request, auth: AuthDep, tokens: Annotated[TokenService, Depends(get_webui_login)]
) -> Principal:
    """The caller, once per request: a Basic login or a personal token; 401 for anything else. A plain `def`:
    a password check (argon2 in strict mode) must not hold the event loop."""
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        user, password = basic_credentials(value)
        address = request.client.host if request.client else ""
        principal = _challenged(lambda: tokens.login(user, password, address))
    elif scheme.lower() == "bearer" and value.strip().startswith(TOKEN_PREFIX):
        principal = _challenged(lambda: auth.identify({"authorization": f"Bearer {value.strip()}"}))
    else:
        raise WebUIUnauthorized(
            "the WebUI API needs HTTP Basic (an OpenESD user and password) or Authorization: Bearer <personal token>"
        )
    request.state.principal = principal
    return principal


def _challenged(login: Any) -> Principal:
    try:
        principal: Principal = login()
    except Unauthorized as refused:
        raise WebUIUnauthorized(refused.message) from None
    if not principal.exists:
        raise WebUIUnauthorized("Unauthorized: the token's user no longer exists")
    return principal


WebUICaller = Annotated[Principal, Depends(get_webui_caller)]


def webui_permitted(*accepted: str) -> Any:
    """Dependency: the caller, who must hold one of `accepted` (403 naming them otherwise)."""

    async def dependency(caller: WebUICaller) -> Principal:
        return authorize(caller, list(accepted))

    return Depends(dependency)


Generating = Annotated[Principal, webui_permitted("inference:all", "inference:create")]
