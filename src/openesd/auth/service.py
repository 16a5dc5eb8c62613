"""Identity: from request headers to a Principal, in `compat` or `strict` mode (decisions.md)."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from openesd.auth.permissions import PermissionSet
from openesd.auth.principal import Principal
from openesd.auth.repository import IdentityRepository
from openesd.metadata.models import PersonalToken
from openesd.errors import BadRequest, Forbidden, Unauthorized

TOKEN_PREFIX = "oesd_"
# A token's `last_used` moves in steps of a minute: a write on every request made each authenticated read
# a write transaction, and concurrent requests queued on the database's write lock (bench/listing.py).
LAST_USED_STEP = timedelta(minutes=1)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AuthService:
    def __init__(self, session: Session, mode: str):
        self.session = session
        self.identities = IdentityRepository(session)
        self.mode = mode

    def identify(self, headers: Mapping[str, str]) -> Principal:
        """The requester named by the headers; 401 when none (it may not exist as a user)."""
        authorization = headers.get("authorization", "")
        bearer = authorization.removeprefix("Bearer ").strip() if authorization else ""
        if bearer.startswith(TOKEN_PREFIX):
            return self._from_token(bearer)
        if self.mode == "strict":
            raise Unauthorized()
        name = headers.get("username") or (_decode_hex_name(bearer) if authorization else "")
        if not name:
            raise Unauthorized()
        return self.principal_for(name)

    def principal_for(self, username: str, via_token: bool = False) -> Principal:
        user = self.identities.user(username)
        if user is None:
            return Principal(username=username, exists=False, via_token=via_token)
        return Principal(
            username=username,
            exists=True,
            roles=tuple(user.roles),
            permissions=self.permissions_of(user.roles),
            via_token=via_token,
        )

    def permissions_of(self, role_names: Iterable[str]) -> PermissionSet:
        names = list(role_names)
        roles = self.identities.roles(names) if names else []
        return PermissionSet(p for role in roles for p in role.permissions)

    def token_is_live(self, token: str) -> bool:
        """Whether `token` is a personal token that exists and has not expired (nothing is written)."""
        return token.startswith(TOKEN_PREFIX) and self._live_token(token) is not None

    def _live_token(self, token: str) -> PersonalToken | None:
        record = self.identities.token(hash_token(token))
        if record is None or (record.expires_at and _aware(record.expires_at) <= datetime.now(UTC)):
            return None
        return record

    def _from_token(self, token: str) -> Principal:
        record = self._live_token(token)
        if record is None:
            raise Unauthorized()
        now = datetime.now(UTC)
        if record.last_used_at is None or now - _aware(record.last_used_at) >= LAST_USED_STEP:
            record.last_used_at = now
        return self.principal_for(record.username, via_token=True)


def authorize(principal: Principal, accepted: list[str]) -> Principal:
    """ESD's permission stage: the user must exist (401) and hold one accepted string (403)."""
    if not principal.exists:
        raise Unauthorized()
    if not principal.permissions.has_any(accepted):
        raise Forbidden(f"User {principal.username} has no permissions: {accepted!r}")
    return principal


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _decode_hex_name(value: str) -> str:
    """ESD 1.4.0 identity: upper-case Base16 of the UTF-8 user name."""
    try:
        return base64.b16decode(value).decode()
    except (binascii.Error, ValueError) as error:
        raise BadRequest(str(error)) from None
