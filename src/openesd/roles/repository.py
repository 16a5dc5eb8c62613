"""All SQL for roles."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import delete, select

from openesd.metadata.models import Role, User
from openesd.metadata.repository import Repository


class RoleRepository(Repository[Role]):
    model = Role

    def list(self, names: Iterable[str] | None = None) -> Sequence[Role]:
        query = select(Role).order_by(Role.name.desc())
        if names is not None:
            query = query.where(Role.name.in_(list(names)))
        return self.session.scalars(query).all()

    def upsert(self, name: str, creator: str, permissions: list[str]) -> Role:
        role = self.get(name)
        if role is None:
            role = Role(name=name, creator=creator, permissions=permissions)
            self.session.add(role)
        else:
            role.creator, role.permissions = creator, permissions
        self.session.flush()
        return role

    def remove_from_users(self, role_names: Iterable[str]) -> None:
        """Drop the given role names from every user's role list (here, not in users/: users imports roles)."""
        gone = set(role_names)
        for user in self.session.scalars(select(User).order_by(User.username.desc())).all():
            if gone & set(user.roles):
                user.roles = [name for name in user.roles if name not in gone]
        self.session.flush()

    def delete(self, names: Iterable[str]) -> None:
        self.session.execute(delete(Role).where(Role.name.in_(list(names))))
        self.session.flush()
