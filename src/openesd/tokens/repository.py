"""All SQL for personal tokens."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from openesd.metadata.models import LoginFailure, PersonalToken
from openesd.metadata.repository import Repository


class TokenRepository(Repository[PersonalToken]):
    model = PersonalToken

    def list_for(self, username: str) -> Sequence[PersonalToken]:
        query = select(PersonalToken).where(PersonalToken.username == username)
        return self.session.scalars(query.order_by(PersonalToken.created_at.desc())).all()

    def delete_all_for(self, username: str) -> int:
        result = self.session.execute(delete(PersonalToken).where(PersonalToken.username == username))
        self.session.flush()
        return result.rowcount

    def delete(self, username: str, token_id: str) -> bool:
        result = self.session.execute(
            delete(PersonalToken).where(PersonalToken.id == token_id, PersonalToken.username == username)
        )
        self.session.flush()
        return result.rowcount > 0


class LoginFailureRepository:
    """Wrong passwords by subject (a hashed user name or client address), for the login throttle."""

    def __init__(self, session: Session):
        self.session = session

    def add(self, subjects: list[str], at: float) -> None:
        self.session.add_all(LoginFailure(subject=subject, at=at) for subject in subjects)
        self.session.flush()

    def recent(self, subject: str, since: float) -> tuple[int, float | None]:
        """How many failures `subject` has had after `since`, and the time of the latest."""
        query = select(func.count(), func.max(LoginFailure.at)).where(
            LoginFailure.subject == subject, LoginFailure.at > since
        )
        count, latest = self.session.execute(query).one()
        return count, latest

    def forget(self, subject: str) -> None:
        self.session.execute(delete(LoginFailure).where(LoginFailure.subject == subject))

    def prune(self, before: float) -> None:
        self.session.execute(delete(LoginFailure).where(LoginFailure.at <= before))
