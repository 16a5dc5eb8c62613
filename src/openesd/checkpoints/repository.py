"""All SQL for checkpoints and their reserved file names."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, delete, func, or_, select
from sqlalchemy.exc import IntegrityError

from openesd.auth.access import Access
from openesd.metadata.models import Checkpoint, CheckpointName
from openesd.metadata.repository import Repository


class NameTaken(Exception):
    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


class CheckpointRepository(Repository[Checkpoint]):
    model = Checkpoint

    def taken(self, names: Iterable[str]) -> str | None:
        """The first of `names` some checkpoint already uses, or None."""
        wanted = list(names)
        found = set(self.session.scalars(select(CheckpointName.name).where(CheckpointName.name.in_(wanted))))
        return next((name for name in wanted if name in found), None)

    def add(self, checkpoint: Checkpoint) -> Checkpoint:
        """Insert the record and reserve its names; NameTaken when another record holds one."""
        super().add(checkpoint)
        self.reserve(checkpoint.id, checkpoint.names)
        return checkpoint

    def reserve(self, checkpoint_id: str, names: Iterable[str]) -> None:
        for name in names:
            try:
                with self.session.begin_nested():
                    self.session.add(CheckpointName(name=name, checkpoint_id=checkpoint_id))
            except IntegrityError:
                raise NameTaken(name) from None

    def release(self, names: Iterable[str]) -> None:
        self.session.execute(delete(CheckpointName).where(CheckpointName.name.in_(list(names))))
        self.session.flush()

    def list(self, statuses: Sequence[str] | None, types: Sequence[str] | None) -> Sequence[Checkpoint]:
        query = _filtered(select(Checkpoint), statuses, types).order_by(Checkpoint.created.desc())
        return self.session.scalars(query).all()

    def page(self, filters: Filters, offset: int, limit: int) -> tuple[int, Sequence[Checkpoint]]:
        """(how many match, the rows of one page, newest first), neither loading the other rows."""
        dialect = self.session.get_bind().dialect.name
        counted = filters.apply(select(func.count()).select_from(Checkpoint), dialect)
        total = self.session.scalar(counted) or 0
        query = filters.apply(select(Checkpoint), dialect).order_by(Checkpoint.created.desc())
        return total, self.session.scalars(query.offset(offset).limit(limit)).all()

    def with_content(self, checkpoint_type: str, sha256: str, other_than: str) -> Checkpoint | None:
        query = select(Checkpoint).where(
            Checkpoint.checkpoint_type == checkpoint_type,
            Checkpoint.content_hash == sha256,
            Checkpoint.id != other_than,
        )
        return self.session.scalars(query.limit(1)).first()

    def active_by_name(self, checkpoint_type: str, name: str) -> Checkpoint | None:
        query = (
            select(Checkpoint)
            .join(CheckpointName, CheckpointName.checkpoint_id == Checkpoint.id)
            .where(
                CheckpointName.name == name,
                Checkpoint.checkpoint_type == checkpoint_type,
                Checkpoint.status == "Active",
            )
        )
        return self.session.scalars(query).first()

    def pending_imports(self) -> Sequence[Checkpoint]:
        """Records whose URL import has not finished (picked up again after a restart)."""
        query = select(Checkpoint).where(Checkpoint.status == "Initial")
        return [c for c in self.session.scalars(query) if c.params.get("import")]

    def pending_merges(self) -> Sequence[Checkpoint]:
        """Outputs of legacy model merges that have not finished (run again after a restart)."""
        query = select(Checkpoint).where(Checkpoint.status == "Initial")
        return [c for c in self.session.scalars(query) if c.params.get("merge_job")]

    def delete(self, checkpoint: Checkpoint) -> None:
        self.session.delete(checkpoint)
        self.session.flush()


def _filtered(query: Select, statuses: Sequence[str] | None, types: Sequence[str] | None) -> Select:
    if statuses:
        query = query.where(Checkpoint.status.in_(list(statuses)))
    if types:
        query = query.where(Checkpoint.checkpoint_type.in_(list(types)))
    return query


@dataclass(frozen=True)
class Filters:
    """A listing's conditions: statuses, types, owner names (the `roles` query) and what `access` may see."""

    statuses: Sequence[str]
    types: Sequence[str]
    roles: Sequence[str]
    access: Access

    def apply(self, query: Select, dialect: str) -> Select:
        query = _filtered(query, self.statuses, self.types)
        if self.roles:
            query = query.where(_shared_with(self.roles, dialect))
        names = self.access.sharing_names()
        if names is not None and self.access.principal is not None:
            # the ownership policy (auth/access.py can_see): the creator, or a name of the owner list
            creator = Checkpoint.params["creator"].as_string() == self.access.principal.username
            query = query.where(or_(creator, _shared_with(names, dialect)))
        return query


def _shared_with(names: Iterable[str], dialect: str) -> ColumnElement[bool]:
    """The owner list (a JSON array) holds one of `names`; each database has its own JSON array reader."""
    reader = func.json_each if dialect == "sqlite" else func.json_array_elements_text
    owners = reader(Checkpoint.allowed_roles_or_users).table_valued("value")
    return select(1).select_from(owners).where(owners.c.value.in_(sorted(names))).exists()
