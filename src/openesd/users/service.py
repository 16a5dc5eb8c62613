"""Rules for users: listing, upsert (with the `initial` bootstrap), deletion (esd-api.md §5, §12)."""

from __future__ import annotations

import base64
import binascii
import json

from sqlalchemy.orm import Session

from openesd.auth.access import ADMINISTRATOR_PERMISSION, is_administrator
from openesd.auth.passwords import SHOW_PASSWORD_REFUSED, Passwords, has_password
from openesd.auth.permissions import DEFAULT_ROLE, SEEDED_CREATOR, PermissionSet, split_permission
from openesd.auth.principal import Principal
from openesd.errors import BadRequest, Forbidden
from openesd.metadata.models import User
from openesd.roles.repository import RoleRepository
from openesd.settings import Settings
from openesd.tokens.repository import TokenRepository
from openesd.users.repository import UserRepository
from openesd.users.schemas import UpsertUser

SEEDED_USER = "api"


class UserService:
    def __init__(self, session: Session, passwords: Passwords, settings: Settings):
        self.users = UserRepository(session)
        self.roles = RoleRepository(session)
        self.tokens = TokenRepository(session)
        self.passwords = passwords
        self.settings = settings

    def seed_defaults(self) -> None:
        """The roles `IT Operator` and `byoc` and the user `api`, only where absent (§12.2)."""
        from openesd.auth.permissions import ADMIN_PERMISSIONS

        for name in (DEFAULT_ROLE, "byoc"):
            if self.roles.get(name) is None:
                self.roles.upsert(name, SEEDED_CREATOR, list(ADMIN_PERMISSIONS))
        if self.users.get(SEEDED_USER) is None:
            self.users.upsert(SEEDED_USER, SEEDED_CREATOR, [DEFAULT_ROLE], None)

    def list(self, requester: Principal, username: str | None, show_password: bool) -> dict:
        if show_password and self.passwords.strict:
            raise BadRequest(SHOW_PASSWORD_REFUSED)
        if username is not None and self.users.get(username) is None:
            raise BadRequest(f'user: "{username}" not exist')
        users = self.users.list()
        if not requester.permissions.has_any(["user:all"]):
            users = [u for u in users if u.creator == requester.username or u.username == requester.username]
        if username is not None:
            users = [u for u in users if u.username == username]
        return {
            "users": [self._view(user, show_password) for user in users],
            "previous_evaluated_key": "not_applicable",
            "last_evaluated_key": "not_applicable",
        }

    def page(self, requester: Principal, limit: int, exclusive_start_key: str | None) -> dict:
        """OpenESD's addition for long user lists (the console): `limit` users after the cursor, read in SQL."""
        if limit < 1:
            raise BadRequest(f"limit must be at least 1, got {limit}")
        after = _user_after(exclusive_start_key) if exclusive_start_key else None
        visible_to = None if requester.permissions.has_any(["user:all"]) else requester.username
        users = self.users.page(after, limit + 1, visible_to)
        last = _user_key(users[limit - 1].username) if len(users) > limit else None
        return {
            "users": [self._view(user, False) for user in users[:limit]],
            "previous_evaluated_key": "not_applicable",
            "last_evaluated_key": last,
        }

    def bootstrap(self, body: UpsertUser) -> dict:
        """`initial: true`: an `IT Operator` user with only the API key (ESD clients rely on it)."""
        if not self.settings.bootstrap_enabled:
            raise Forbidden("initial user creation is turned off (OPENESD_BOOTSTRAP_ENABLED=false)")
        if self.settings.auth_mode == "strict" and self._admin_exists():
            raise Forbidden(
                "initial user creation is refused in strict mode once an administrator exists; "
                "ask an administrator to create the user"
            )
        self._require_password(body)
        self._save(body.username, SEEDED_CREATOR, [DEFAULT_ROLE], body.password)
        return {
            "user": {"username": body.username, "roles": [DEFAULT_ROLE]},
            "all_roles": sorted(role.name for role in self.roles.list()),
        }

    def upsert(self, requester: Principal, body: UpsertUser) -> None:
        self._require_password(body)
        self._check_may_manage(requester, body.username)
        if not body.roles:
            raise BadRequest("roles is required: a non-empty list of role names")
        for role_name in body.roles:
            role = self.roles.get(role_name)
            for permission in role.permissions if role else []:
                parts = split_permission(permission)
                if parts and not requester.permissions.allows(*parts):
                    raise Forbidden(f"creator has no permission to assign permission [{permission}] to others")
        for role_name in body.roles:
            if self.roles.get(role_name) is None:
                raise BadRequest(f'user roles "{role_name}" not exist')
        self._save(body.username, requester.username, list(body.roles), body.password)

    def delete(self, requester: Principal, names: list[str]) -> None:
        for name in dict.fromkeys(names):
            if self.users.get(name) is None:
                continue
            self._check_may_manage(requester, name)
            self.users.delete([name])  # its tokens go with it (foreign key, on delete cascade)

    def _save(self, username: str, creator: str, roles: list[str], password: str) -> None:
        """Create or overwrite a user; a changed password revokes the user's personal tokens."""
        existing = self.users.get(username)
        if existing is not None and not self.passwords.matches(existing, password):
            self.tokens.delete_all_for(username)
        self.users.upsert(username, creator, roles, self.passwords.protect(password))

    def _check_may_manage(self, requester: Principal, target_name: str) -> None:
        held = requester.permissions
        if not held.allows("user", "create"):
            raise Forbidden(f"creator {requester.username} does not have permission to manage the user")
        target = self.users.get(target_name)
        if target is not None and target.creator != requester.username and not held.allows("user", "all"):
            raise BadRequest(
                f"username {target_name} has already exists, creator {requester.username} "
                "does not have permissions to change it"
            )
        if target is not None and self.settings.auth_mode == "strict" and not is_administrator(requester):
            self._check_holds_all_of(requester, target)

    def _check_holds_all_of(self, requester: Principal, target: User) -> None:
        """Strict mode: managing a user is managing its permissions, so a non-administrator may not touch a
        user who holds one it lacks (an administrator above all)."""
        lacking = sorted(p for p in set(self._permissions(target)) if not _holds(requester.permissions, p))
        if lacking:
            raise Forbidden(
                f"user {target.username} holds {', '.join(lacking)}, which {requester.username} does not: in strict "
                f"mode only an administrator ({ADMINISTRATOR_PERMISSION}) may change, set the password of or "
                "delete such a user"
            )

    def _require_password(self, body: UpsertUser) -> None:
        if body.password is None:
            raise BadRequest("UpsertUserEvent.__init__() missing 1 required positional argument: 'password'")

    def _admin_exists(self) -> bool:
        for user in self.users.list():
            if user.username == SEEDED_USER and not has_password(user):
                continue  # the seeded API user has no password and cannot log in
            if PermissionSet(self._permissions(user)).allows("user", "all"):
                return True
        return False

    def _permissions(self, user: User) -> list[str]:
        return [p for role in self.roles.list(user.roles) for p in role.permissions] if user.roles else []

    def _view(self, user: User, show_password: bool) -> dict:
        return {
            "username": user.username,
            "roles": list(user.roles),
            "creator": user.creator,
            "permissions": sorted(set(self._permissions(user))),
            "password": self.passwords.shown(user, show_password),
        }


def _user_key(username: str) -> str:
    """The cursor after `username`: base64 JSON, as ESD's other listings' keys look."""
    return base64.b64encode(json.dumps({"username": username}, separators=(",", ":")).encode()).decode()


def _user_after(exclusive_start_key: str) -> str:
    """The user name a page starts after, from a key this listing returned."""
    try:
        name = json.loads(base64.b64decode(exclusive_start_key, validate=True)).get("username")
    except (binascii.Error, ValueError, UnicodeDecodeError, AttributeError):
        name = None
    if not isinstance(name, str) or not name or "\x00" in name or not name.isprintable():
        raise BadRequest(f"exclusive_start_key {exclusive_start_key!r} is not a key returned by this listing")
    return name


def _holds(held: PermissionSet, permission: str) -> bool:
    parts = split_permission(permission)
    return held.allows(*parts) if parts else held.has_any([permission])
