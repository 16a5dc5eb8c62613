"""The reads identity needs: a user by name, roles by name, a personal token by its hash.

They live here, under the users/roles/tokens resources that import `auth`, so identity reads the
accounts tables without importing those packages (no import cycle; scripts/import_graph.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from openesd.metadata.models import PersonalToken, Role, User


class IdentityRepository:
    def __init__(self, session: Session):
        self.session = session

    def user(self, username: str) -> User | None:
        return self.session.get(User, username)

    def roles(self, names: Iterable[str]) -> Sequence[Role]:
        query = select(Role).where(Role.name.in_(list(names))).order_by(Role.name.desc())
        return self.session.scalars(query).all()

    def token(self, token_hash: str) -> PersonalToken | None:
        return self.session.scalar(select(PersonalToken).where(PersonalToken.token_hash == token_hash))
