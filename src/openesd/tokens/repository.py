"""All SQL for personal tokens."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from openesd.metadata.models import PersonalToken


class TokenRepository:
    def __init__(self, session: Session):
        self.session = session

    def add(self, token: PersonalToken) -> PersonalToken:
        self.session.add(token)
        self.session.flush()
        return token

    def by_hash(self, token_hash: str) -> PersonalToken | None:
        return self.session.scalar(select(PersonalToken).where(PersonalToken.token_hash == token_hash))

    def list_for(self, username: str) -> Sequence[PersonalToken]:
        query = select(PersonalToken).where(PersonalToken.username == username)
        return self.session.scalars(query.order_by(PersonalToken.created_at.desc())).all()

    def delete(self, username: str, token_id: str) -> bool:
        result = self.session.execute(
            delete(PersonalToken).where(
                PersonalToken.id == token_id, PersonalToken.username == username
            )
        )
        self.session.flush()
        return result.rowcount > 0
