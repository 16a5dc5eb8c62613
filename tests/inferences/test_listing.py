"""`GET /inferences` reads one page from the database: visibility, ESD's `username` rule and the cursor are
applied in SQL (decisions.md, Listings under load), with the same answers as filtering every job in Python."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event

from openesd.metadata.db import create_db_engine, create_sessionmaker
from openesd.metadata.migrate import MIGRATIONS, upgrade_to_head
from openesd.metadata.models import InferenceJob
from tests.api.conftest import ESDClient, esd, make_client  # noqa: F401  (shared fixtures)
from tests.auth.conftest import Team, team  # noqa: F401  (strict app: root, alice and carol of team-a, bob)

# Owner lists as ESD and older rows may hold them; in practice a job's list is [creator].
LISTS = [
    ["alice"],
    ["bob"],
    ["carol"],
    ["root"],
    ["bob", "team-a"],
    ["bob", "dave"],
    ["team-a"],
    ["*"],
    [],
    ["bob"],
    ["alice"],
    ["dave", "alice"],
]


def seed(client: ESDClient, lists: list[list[str]], task_type: str = "txt2img") -> list[str]:
    """One finished job per owner list, created a second apart in the list's order; their ids."""
    jobs = [
        InferenceJob(
            id=str(uuid.uuid4()),
            task_type=task_type,
            inference_type="Async",
            status="succeed",
            owner_group_or_role=names,
            create_time=f"2026-01-01 00:00:{n:02d}",
            created=1e9 + n,
            params={"used_models": {}},
            queued=False,
            attempts=1,
        )
        for n, names in enumerate(lists)
    ]
    with client.http.app.state.sessionmaker() as session:
        session.add_all(jobs)
        session.commit()
    return [job.id for job in jobs]


def every_page(get, limit: int, **params) -> list[str]:
    """The ids of every page, following `last_evaluated_key` to the end."""
    ids, key = [], None
    while True:
        cursor = {"exclusive_start_key": key} if key else {}
        answer = get("/prod/inferences", params={"limit": limit, **params, **cursor})
        assert answer.status_code == 200, answer.json()
        page = answer.json()["data"]
        assert len(page["inferences"]) <= limit
        ids += [job["InferenceJobId"] for job in page["inferences"]]
        if (key := page["last_evaluated_key"]) is None:
            return ids


def newest_first(ids: list[str], keep: list[int]) -> list[str]:
    return [ids[n] for n in sorted(keep, reverse=True)]


@pytest.mark.parametrize("limit", [1, 2, 5, 100])
def test_strict_pages_hold_exactly_the_jobs_each_member_may_see(team: Team, limit):
    ids = seed(team.esd, LISTS * 3)
    seed(team.esd, [["alice"]], "img2img")
    index = {n: names for n, names in enumerate(LISTS * 3)}

    def shared_with(*names: str) -> list[int]:
        return [n for n, owners in index.items() if "*" in owners or set(owners) & set(names)]

    assert every_page(team.alice.get, limit) == newest_first(ids, shared_with("alice", "team-a"))
    assert every_page(team.carol.get, limit) == newest_first(ids, shared_with("carol", "team-a"))
    assert every_page(team.bob.get, limit) == newest_first(ids, shared_with("bob", "team-b"))
    assert every_page(team.root.get, limit) == newest_first(ids, list(index))  # the administrator sees all
    # ESD's `username` rule on top of the requester's own visibility
    assert every_page(team.alice.get, limit, username="bob") == newest_first(
        ids, [n for n in shared_with("alice", "team-a") if n in shared_with("bob", "team-b")]
    )


def test_compat_username_rule_pages_in_sql_as_it_filtered_before(esd):
    esd.post("/prod/roles", json={"role_name": "team-a", "permissions": ["inference:all"]}, user="api")
    assert (
        esd.post(
            "/prod/users", json={"username": "carol", "password": "pw", "roles": ["team-a"]}, user="api"
        ).status_code
        == 201
    )
    ids = seed(esd, LISTS * 2)
    index = dict(enumerate(LISTS * 2))
    assert every_page(esd.get, 3) == newest_first(ids, list(index))  # compat: nothing hidden
    assert every_page(esd.get, 3, username="carol") == newest_first(
        ids, [n for n, owners in index.items() if {"*", "carol", "team-a"} & set(owners)]
    )


def test_a_page_reads_its_own_rows_only(esd):
    seed(esd, [["api"]] * 300)
    loaded = []

    def count(job, _context):
        loaded.append(job.id)

    event.listen(InferenceJob, "load", count)
    try:
        page = esd.get("/prod/inferences", params={"limit": 10}).json()["data"]
        assert len(page["inferences"]) == 10 and page["last_evaluated_key"]
        assert len(loaded) <= 11, f"{len(loaded)} jobs loaded to answer a page of 10"
        loaded.clear()
        page = esd.get("/prod/inferences", params={"limit": 10, "exclusive_start_key": page["last_evaluated_key"]})
        assert len(page.json()["data"]["inferences"]) == 10 and len(loaded) <= 11
    finally:
        event.remove(InferenceJob, "load", count)


def key(value: dict | str) -> str:
    raw = value if isinstance(value, str) else json.dumps(value)
    return base64.b64encode(raw.encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        {"t": 10**400, "id": "x"},
        {"t": 2**70 * 10**300, "id": "x"},
        '{"t": NaN, "id": "x"}',
        '{"t": Infinity, "id": "x"}',
        '{"t": 1.5, "id": "x\\ud800"}',
        '{"t": 1.5, "id": "x\\u0000"}',
    ],
)
def test_a_cursor_no_database_can_compare_is_a_400_naming_it(esd, cursor):
    seed(esd, [["api"]])
    answer = esd.get("/prod/inferences", params={"exclusive_start_key": key(cursor)})
    assert answer.status_code == 400
    assert answer.json()["message"] == f"exclusive_start_key {key(cursor)!r} is not a key returned by this listing"


def test_a_huge_limit_lists_everything(esd):
    ids = seed(esd, [["api"]] * 3)
    answer = esd.get("/prod/inferences", params={"limit": 10**30})
    assert [j["InferenceJobId"] for j in answer.json()["data"]["inferences"]] == ids[::-1]


def test_migration_0008_backfills_the_owner_of_existing_jobs(database_url):
    engine = create_db_engine(database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0007")
        jobs = sa.table(
            "inference_jobs",
            *(
                sa.column(c)
                for c in ("id", "task_type", "inference_type", "status", "create_time", "created", "queued", "attempts")
            ),
            sa.column("owner_group_or_role", sa.JSON),
            sa.column("params", sa.JSON),
        )
        connection.execute(
            jobs.insert(),
            [
                {
                    "id": f"job-{n}",
                    "task_type": "txt2img",
                    "inference_type": "Async",
                    "status": "succeed",
                    "create_time": "t",
                    "created": float(n),
                    "queued": False,
                    "attempts": 0,
                    "owner_group_or_role": names,
                    "params": {},
                }
                for n, names in enumerate([["alice"], ["team-a"], ["bob", "carol"], []])
            ],
        )
    upgrade_to_head(engine)
    with create_sessionmaker(engine)() as session:
        owners = dict(session.execute(sa.select(InferenceJob.id, InferenceJob.owner)).all())
    engine.dispose()
    assert owners == {"job-0": "alice", "job-1": "team-a", "job-2": None, "job-3": None}
