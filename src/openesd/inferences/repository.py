"""All SQL for inference jobs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cache

from sqlalchemy import Float, Row, Select, String, bindparam, or_, select, tuple_, update

from openesd.inferences.schemas import TERMINAL
from openesd.metadata.models import InferenceJob
from openesd.metadata.repository import Repository

_MOST_ROWS = 2**31  # a `limit` past any table's size (the databases refuse one past 64 bits)
_UNFINISHED = (InferenceJob.queued.is_(True), InferenceJob.status.not_in(TERMINAL))


def _lapsed(now: float):
    return or_(InferenceJob.lease_owner.is_(None), InferenceJob.lease_expires < now)


# What a listing page shows of a job (the list shape of esd-api.md §8.1) and its paging and visibility keys:
# read as plain rows, since building entities was a third of a page's cost and nothing on it is changed.
_LISTED = (
    InferenceJob.id,
    InferenceJob.task_type,
    InferenceJob.inference_type,
    InferenceJob.status,
    InferenceJob.owner_group_or_role,
    InferenceJob.owner,
    InferenceJob.create_time,
    InferenceJob.created,
    InferenceJob.start_time,
    InferenceJob.complete_time,
    InferenceJob.image_names,
    InferenceJob.inference_info_name,
    InferenceJob.sagemaker_raw,
    InferenceJob.payload_string,
    InferenceJob.params,
)


@cache
def _page_query(audiences: int, after: bool, status: bool) -> Select:
    """A page's statement, built once per shape (building one cost more than running it): values bound."""
    query = select(*_LISTED).where(InferenceJob.task_type == bindparam("task_type"))
    if status:
        query = query.where(InferenceJob.status == bindparam("status"))
    for number in range(audiences):
        names = bindparam(f"names{number}", expanding=True)
        query = query.where(or_(InferenceJob.owner.in_(names), InferenceJob.owner.is_(None)))
    if after:
        key = tuple_(bindparam("after_created", type_=Float), bindparam("after_id", type_=String))
        query = query.where(tuple_(InferenceJob.created, InferenceJob.id) < key)
    return query.order_by(InferenceJob.created.desc(), InferenceJob.id.desc()).limit(bindparam("size"))


def _shared(job: Row, audiences: list[frozenset[str]]) -> bool:
    """The check the `owner` column stands for, on the list itself."""
    return all(names.intersection(job.owner_group_or_role) for names in audiences)


class InferenceRepository(Repository[InferenceJob]):
    model = InferenceJob

    def page(
        self,
        task_type: str,
        audiences: Iterable[frozenset[str]],
        after: tuple[float, str] | None,
        size: int,
        status: str | None = None,
    ) -> list[Row]:
        """Up to `size` jobs of `task_type` (rows of the listed columns), newest first, after the (created, id) key
        `after`, whose owner list holds a name of every audience. One query of `size` rows for the jobs of one
        owner; a job whose list holds several names has no `owner`, so it is read and checked here (another query
        only when such jobs took room in the page)."""
        audiences, size = list(audiences), min(size, _MOST_ROWS)
        values = {"task_type": task_type, "size": size, **{f"names{n}": list(v) for n, v in enumerate(audiences)}}
        if status is not None:
            values["status"] = status
        found: list[Row] = []
        while True:
            query = _page_query(len(audiences), after is not None, status is not None)
            if after is not None:
                values.update(after_created=after[0], after_id=after[1])
            rows = self.session.execute(query, values).all()
            found += [job for job in rows if job.owner is not None or _shared(job, audiences)]
            if len(found) >= size or len(rows) < size:
                return found[:size]
            after = (rows[-1].created, rows[-1].id)

    def waiting_before(self, job: InferenceJob) -> int:
        """How many jobs wait on `job`'s endpoint ahead of it: started earlier, not yet taken by a worker, not
        being cancelled. Read from the rows, so every API replica counts the same queue."""
        query = select(InferenceJob.id, InferenceJob.start_time, InferenceJob.progress).where(
            InferenceJob.endpoint_id == job.endpoint_id, InferenceJob.cancelled_by.is_(None), *_UNFINISHED
        )
        mine = (job.start_time or "", job.id)
        return sum(
            1
            for row in self.session.execute(query)
            if (row.progress or {}).get("phase") == "queued" and (row.start_time or "", row.id) < mine
        )

    def lapsed(self, now: float) -> Sequence[str]:
        """Ids of unfinished jobs that no live replica holds: never leased, or the lease expired."""
        query = select(InferenceJob.id).where(*_UNFINISHED, _lapsed(now)).order_by(InferenceJob.created)
        return self.session.scalars(query).all()

    def claim(self, job_id: str, owner: str, now: float, until: float) -> bool:
        """Take the job's lease if it is still unfinished and lapsed. One atomic UPDATE: of replicas racing
        for the same job, exactly one sees its row changed."""
        query = (
            update(InferenceJob)
            .where(InferenceJob.id == job_id, *_UNFINISHED, _lapsed(now))
            .values(lease_owner=owner, lease_expires=until)
            .execution_options(synchronize_session=False)
        )
        return self.session.execute(query).rowcount == 1

    def renew(self, owner: str, until: float) -> int:
        """Extend the leases of the unfinished jobs `owner` holds; how many."""
        query = (
            update(InferenceJob)
            .where(InferenceJob.lease_owner == owner, *_UNFINISHED)
            .values(lease_expires=until)
            .execution_options(synchronize_session=False)
        )
        return self.session.execute(query).rowcount

    def release(self, owner: str) -> int:
        """Drop the leases `owner` holds on unfinished jobs, so another replica may claim them at once."""
        query = (
            update(InferenceJob)
            .where(InferenceJob.lease_owner == owner, *_UNFINISHED)
            .values(lease_owner=None, lease_expires=None)
            .execution_options(synchronize_session=False)
        )
        return self.session.execute(query).rowcount

    def delete(self, job: InferenceJob) -> None:
        self.session.delete(job)
        self.session.flush()
