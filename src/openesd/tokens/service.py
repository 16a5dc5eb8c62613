"""Personal tokens: created (shown once), listed and revoked by their owner; stored hashed."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from openesd.auth.passwords import Passwords
from openesd.auth.principal import Principal
from openesd.auth.repository import IdentityRepository
from openesd.auth.service import TOKEN_PREFIX, AuthService, hash_token
from openesd.errors import NotFound, Unauthorized
from openesd.metadata.models import PersonalToken
from openesd.tokens.repository import TokenRepository
from openesd.tokens.schemas import CreateToken
from openesd.tokens.throttle import LoginThrottle


def token_view(token: PersonalToken) -> dict:
    def stamp(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment else None

    return {
        "id": token.id,
        "name": token.name,
        "prefix": token.prefix,
        "username": token.username,
        "created": stamp(token.created_at),
        "expires": stamp(token.expires_at),
        "last_used": stamp(token.last_used_at),
    }


def token_record(username: str, name: str, secret: str, expires_at: datetime | None = None) -> PersonalToken:
    """The stored row of a personal token: its hash and a short display prefix, never the secret."""
    return PersonalToken(
        id=str(uuid.uuid4()),
        username=username,
        name=name,
        token_hash=hash_token(secret),
        prefix=secret[: len(TOKEN_PREFIX) + 6],
        expires_at=expires_at,
        created_at=datetime.now(UTC),
    )


class TokenService:
    def __init__(self, session: Session, auth: AuthService, passwords: Passwords, throttle: LoginThrottle | None):
        """`throttle` None: password logins are not rate-limited (compat mode)."""
        self.tokens = TokenRepository(session)
        self.identities = IdentityRepository(session)  # not `users`: users imports tokens (no cycle)
        self.auth = auth
        self.passwords = passwords
        self.throttle = throttle

    def create(self, headers: Mapping[str, str], body: CreateToken, address: str = "") -> dict:
        """A new token for the requester, or for `username` when the body carries its password (a login from
        the client `address`)."""
        login = body.username is not None
        owner = self.login(body.username or "", body.password, address) if login else self.auth.identify(headers)
        if not owner.exists:
            raise Unauthorized()
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        expires = datetime.now(UTC) + timedelta(days=body.expires_in_days) if body.expires_in_days else None
        record = self.tokens.add(token_record(owner.username, body.name, secret, expires))
        return {"token": token_view(record), "secret": secret}

    def list(self, owner: Principal) -> dict:
        return {"tokens": [token_view(token) for token in self.tokens.list_for(owner.username)]}

    def revoke(self, owner: Principal, token_id: str) -> None:
        if not self.tokens.delete(owner.username, token_id):
            raise NotFound(f"token {token_id} not found")

    def login(self, username: str, password: str | None, address: str) -> Principal:
        """The user `username` if `password` is theirs (401 otherwise), under the login throttle: the one
        password check of `POST /tokens` and of the WebUI API's HTTP Basic (sdapi/)."""
        if self.throttle is not None:
            self.throttle.check(username, address)
        user = self.identities.user(username)
        if password is None or not self.passwords.matches(user, password):
            if self.throttle is not None:
                self.throttle.failed(username, address)
            raise Unauthorized("Unauthorized: wrong user name or password")
        if self.throttle is not None:
            self.throttle.succeeded(username)
        self.passwords.upgrade(user, password)
        return self.auth.principal_for(user.username)
