"""Personal tokens: created (shown once), listed and revoked by their owner; stored hashed."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from openesd.auth.principal import Principal
from openesd.auth.service import TOKEN_PREFIX, AuthService, hash_token
from openesd.errors import NotFound, Unauthorized
from openesd.keys import PasswordCipher
from openesd.metadata.models import PersonalToken
from openesd.tokens.repository import TokenRepository
from openesd.tokens.schemas import CreateToken
from openesd.users.repository import UserRepository


def token_view(token: PersonalToken) -> dict:
    def stamp(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment else None

    return {
        "id": token.id, "name": token.name, "prefix": token.prefix, "username": token.username,
        "created": stamp(token.created_at), "expires": stamp(token.expires_at),
        "last_used": stamp(token.last_used_at),
    }


class TokenService:
    def __init__(self, session: Session, auth: AuthService, cipher: PasswordCipher):
        self.tokens = TokenRepository(session)
        self.users = UserRepository(session)
        self.auth = auth
        self.cipher = cipher

    def create(self, headers: Mapping[str, str], body: CreateToken) -> dict:
        """A new token for the requester, or for `username` when the body carries its password."""
        owner = self._login(body) if body.username is not None else self.auth.identify(headers)
        if not owner.exists:
            raise Unauthorized()
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        expires = (
            datetime.now(UTC) + timedelta(days=body.expires_in_days) if body.expires_in_days else None
        )
        record = self.tokens.add(
            PersonalToken(
                id=str(uuid.uuid4()), username=owner.username, name=body.name,
                token_hash=hash_token(secret), prefix=secret[: len(TOKEN_PREFIX) + 6],
                expires_at=expires, created_at=datetime.now(UTC),
            )
        )
        return {"token": token_view(record), "secret": secret}

    def list(self, owner: Principal) -> dict:
        return {"tokens": [token_view(token) for token in self.tokens.list_for(owner.username)]}

    def revoke(self, owner: Principal, token_id: str) -> None:
        if not self.tokens.delete(owner.username, token_id):
            raise NotFound(f"token {token_id} not found")

    def _login(self, body: CreateToken) -> Principal:
        user = self.users.get(body.username)
        ciphertext = user.password_ciphertext if user else None
        if body.password is None or not self.cipher.verify(body.password, ciphertext):
            raise Unauthorized("Unauthorized: wrong user name or password")
        return self.auth.principal_for(user.username)
