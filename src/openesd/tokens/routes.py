"""`/tokens`: a user's own personal tokens (OpenESD's addition; decisions.md, Authentication)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from openesd.api.deps import PasswordCipherDep, SessionDep, SessionmakerDep, SettingsDep
from openesd.api.envelope import esd_response
from openesd.api.gateway import esd_body
from openesd.api.identity import AuthDep, Requester
from openesd.auth.passwords import Passwords
from openesd.auth.principal import Principal
from openesd.auth.service import authorize
from openesd.tokens.schemas import CREATE_TOKEN_SCHEMA, CreateToken
from openesd.tokens.service import TokenService
from openesd.tokens.throttle import LoginThrottle

router = APIRouter(tags=["tokens"])


def get_token_service(
    session: SessionDep, settings: SettingsDep, auth: AuthDep, cipher: PasswordCipherDep, make_session: SessionmakerDep
) -> TokenService:
    passwords = Passwords(cipher, settings.auth_mode)
    strict = settings.auth_mode == "strict"
    throttle = LoginThrottle(make_session, settings) if strict else None
    return TokenService(session, auth, passwords, throttle)


Tokens = Annotated[TokenService, Depends(get_token_service)]
CreateTokenBody = Annotated[CreateToken, esd_body(CREATE_TOKEN_SCHEMA, CreateToken)]


def existing_user(requester: Requester) -> Principal:
    return authorize(requester, []) if not requester.exists else requester


Owner = Annotated[Principal, Depends(existing_user)]


@router.post("/tokens")
def create_token(body: CreateTokenBody, request: Request, tokens: Tokens):
    address = request.client.host if request.client else ""
    return esd_response(201, tokens.create(request.headers, body, address), message="token created")


@router.get("/tokens")
def list_tokens(owner: Owner, tokens: Tokens):
    return esd_response(200, tokens.list(owner))


@router.delete("/tokens/{token_id}")
def revoke_token(token_id: str, owner: Owner, tokens: Tokens):
    tokens.revoke(owner, token_id)
    return esd_response(204)
