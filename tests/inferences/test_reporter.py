"""The engine's reports on endpoints: an endpoint deleted while its worker starts takes the report quietly."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from openesd.server.runtime import boot
from openesd.inferences.reporter import EngineReporter
from openesd.metadata.models import Endpoint
from tests.api.conftest import make_settings


@pytest.fixture
def runtime(tmp_path, database_url):
    runtime = boot(make_settings(tmp_path, database_url=database_url))
    yield runtime
    runtime.close()


def add_endpoint(make_session: sessionmaker[Session], endpoint_id: str) -> None:
    with make_session.begin() as session:
        session.add(
            Endpoint(
                id=endpoint_id,
                endpoint_name=f"esd-async-{endpoint_id}",
                endpoint_type="Async",
                endpoint_status="Creating",
                autoscaling=False,
                instance_type="cpu",
                initial_instance_count=1,
                current_instance_count=0,
                min_instance_number=1,
                max_instance_number=1,
                start_time="2024-01-01 00:00:00",
                started=time.time(),
                owner_group_or_role=["IT Operator"],
            )
        )


def deleting_on_read(make_session: sessionmaker[Session], endpoint_id: str) -> sessionmaker[Session]:
    """Sessions in which another transaction deletes the endpoint right after this one has read it:
    the moment a user's DELETE lands between a report's read and its write."""

    def delete_it() -> None:
        with make_session.begin() as other:
            other.execute(delete(Endpoint).where(Endpoint.id == endpoint_id))

    class RacedSession(Session):
        def get(self, entity, ident, **kwargs):  # a read, then an ORM write at commit
            found = super().get(entity, ident, **kwargs)
            delete_it()
            return found

        def execute(self, statement, *args, **kwargs):  # a single UPDATE statement (get() selects through here)
            if getattr(statement, "is_dml", False):
                delete_it()
            return super().execute(statement, *args, **kwargs)

    return sessionmaker(bind=make_session.kw["bind"], class_=RacedSession, expire_on_commit=False)


@pytest.mark.parametrize(
    "report",
    [
        lambda reporter, endpoint_id: reporter.endpoint_ready(endpoint_id),
        lambda reporter, endpoint_id: reporter.endpoint_failed(endpoint_id, "worker crashed"),
        lambda reporter, endpoint_id: reporter.instances_changed(endpoint_id, 1),
    ],
    ids=["ready", "failed", "instances"],
)
def test_a_report_on_an_endpoint_deleted_meanwhile_is_dropped(runtime, report):
    add_endpoint(runtime.sessionmaker, "e1")
    reporter = EngineReporter(deleting_on_read(runtime.sessionmaker, "e1"), runtime.store, runtime.waiter)
    report(reporter, "e1")  # raised StaleDataError: UPDATE expected to update 1 row(s); 0 were matched
    with runtime.sessionmaker() as session:
        assert session.get(Endpoint, "e1") is None  # not brought back by the report


def test_a_report_on_a_live_endpoint_still_lands(runtime):
    add_endpoint(runtime.sessionmaker, "e2")
    reporter = EngineReporter(runtime.sessionmaker, runtime.store, runtime.waiter)
    reporter.endpoint_ready("e2")
    reporter.instances_changed("e2", 1)
    with runtime.sessionmaker() as session:
        endpoint = session.get(Endpoint, "e2")
        assert (endpoint.endpoint_status, endpoint.current_instance_count, endpoint.error) == ("InService", 1, None)
