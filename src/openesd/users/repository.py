"""All SQL for users."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import delete, select

from openesd.auth.passwords import StoredPassword
from openesd.metadata.models import User
from openesd.metadata.repository import Repository


class UserRepository(Repository[User]):
    model = User

    def list(self) -> Sequence[User]:
        return self.session.scalars(select(User).order_by(User.username.desc())).all()

    def upsert(self, username: str, creator: str, roles: list[str], password: StoredPassword | None) -> User:
        user = self.get(username)
        if user is None:
            user = User(username=username)
            self.session.add(user)
        user.creator, user.roles = creator, roles
        user.password_ciphertext = password.ciphertext if password else None
        user.password_hash = password.hash if password else None
        self.session.flush()
        return user

    def delete(self, usernames: Iterable[str]) -> None:
        self.session.execute(delete(User).where(User.username.in_(list(usernames))))
        self.session.flush()
