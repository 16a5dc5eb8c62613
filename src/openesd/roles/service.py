"""Rules for roles: who may see, create, overwrite and delete them (esd-api.md §4, §12)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from openesd.auth.permissions import DEFAULT_ROLE, split_permission
from openesd.auth.principal import Principal
from openesd.auth.service import authorize
from openesd.errors import BadRequest
from openesd.metadata.models import Role
from openesd.roles.repository import RoleRepository
from openesd.roles.schemas import UpsertRole


def role_view(role: Role) -> dict:
    return {"role_name": role.name, "creator": role.creator, "permissions": list(role.permissions)}


class RoleService:
    def __init__(self, session: Session, auth_mode: str = "compat"):
        self.auth_mode = auth_mode
        self.roles = RoleRepository(session)

    def list(self, requester: Principal, role_name: str | None) -> dict:
        roles = self.roles.list([role_name] if role_name is not None else None)
        if not requester.permissions.has_any(["role:all"]):
            mine = set(requester.roles)
            roles = [r for r in roles if r.creator == requester.username or r.name in mine]
        return {
            "roles": [role_view(role) for role in roles],
            "previous_evaluated_key": "not_applicable",
            "last_evaluated_key": None,
        }

    def upsert(self, requester: Principal, body: UpsertRole) -> None:
        """Create or replace a role; a requester without `role:all` may only grant what it holds."""
        if not body.initial or self.auth_mode == "strict":  # `initial` skips only this check (§4.2)
            authorize(requester, ["role:all", "role:create"])
        if not requester.exists:
            raise BadRequest(f'user: "{requester.username}" not exist')
        for permission in body.permissions:
            if split_permission(permission) is None:
                raise BadRequest(f"permission {permission} must have the form <resource>:<action>, e.g. checkpoint:all")
        held = requester.permissions
        if not held.allows("role", "all"):
            existing = self.roles.get(body.role_name)
            if existing is not None and existing.creator != requester.username:
                raise BadRequest(f"creator {requester.username} not have permission to update role {body.role_name}")
            for permission in body.permissions:
                resource, action = split_permission(permission)
                if not held.allows(resource, action):
                    raise BadRequest(
                        f"creator {requester.username} have not permission to create role "
                        f"with permission: [{permission}]"
                    )
        self.roles.upsert(body.role_name, requester.username, list(body.permissions))

    def delete(self, names: list[str]) -> None:
        unique = list(dict.fromkeys(names))
        if DEFAULT_ROLE in unique:
            raise BadRequest("cannot delete default role")
        self.roles.remove_from_users(unique)
        self.roles.delete(unique)
