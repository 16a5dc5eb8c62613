"""What every table's repository does alike: read a row by primary key, read it locked, insert one."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from sqlalchemy.orm import Session

from openesd.metadata.base import Base

ModelT = TypeVar("ModelT", bound=Base)


class Repository(Generic[ModelT]):
    """The SQL shared by every repository; a subclass names its table in `model` and holds the rest."""

    model: type[ModelT]

    def __init__(self, session: Session):
        self.session = session

    def get(self, key: Any) -> ModelT | None:
        """The row with primary key `key`, or None."""
        return self.session.get(self.model, key)

    def get_for_update(self, key: Any) -> ModelT | None:
        """The row with primary key `key`, locked until the transaction ends (where the database locks rows)."""
        return self.session.get(self.model, key, with_for_update=True)

    def add(self, row: ModelT) -> ModelT:
        """Insert `row`, flushed so that a constraint it breaks raises here."""
        self.session.add(row)
        self.session.flush()
        return row
