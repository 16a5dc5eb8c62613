"""All SQL for users."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import delete, or_, select

from openesd.auth.passwords import StoredPassword
from openesd.metadata.models import User
from openesd.metadata.repository import Repository


class UserRepository(Repository[User]):
    model = User

    def list(self) -> Sequence[User]:
        return self.session.scalars(select(User).order_by(User.username.desc())).all()

    def page(self, after: str | None, limit: int, visible_to: str | None) -> Sequence[User]:
        """Up to `limit` users after `after` in the listing's order (name descending); with `visible_to`, only
        the users that name created and itself (`user:list`)."""
        query = select(User).order_by(User.username.desc()).limit(limit)
        if after is not None:
            query = query.where(User.username < after)
        if visible_to is not None:
            query = query.where(or_(User.creator == visible_to, User.username == visible_to))
        return self.session.scalars(query).all()

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
