"""The console's data loads with 10 and with 10,000 rows, and its first paint in Chromium.

Usage: .venv/bin/python bench/console.py [--small 10] [--large 10000] [--repeat 15] [--no-browser]

One invocation seeds two data directories (`--small` and `--large` inference jobs and checkpoints each,
written through the SQLAlchemy models before the servers start), runs a real strict-mode `openesd serve` on
each, and times, over HTTP with the personal token as the console sends it, the exact API calls the Jobs and
Models pages make for their first page (one after the other, on one keep-alive connection; the servers take
turns; the fastest of `--repeat` after 3 warm-up loads, since the machine may be shared): the
administrator's and a team member's. Then the console's first-contentful-paint (Performance API) of /console/
after sign-in in headless Chromium. The figure the issue asks for is each page's large/small ratio (≤ 1.5×).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.server import ServerProcess  # noqa: E402  (the server the tests start, started the same way)

EPOCH = 1_750_000_000.0  # the first row's time: fixed, so every run lists the same pages
TOKENS = {"root": "oesd_bench-console-admin-token-0123456789", "tess": "oesd_bench-console-member-token-012345678"}
JOBS_PER_PAGE = 10  # the Jobs page's smallest "Per page": the small data set fills exactly one page
MODELS_PER_PAGE = 20  # the Models page's page size (static/pages/models.js)


# -- the data set --------------------------------------------------------------------------------
def seed(data_dir: Path, rows: int) -> None:
    """An administrator and a team member (each with a personal token), `rows` finished txt2img jobs of the
    member (the administrator sees them too: both pages show as many rows), and `rows` Active checkpoints
    shared with the team role."""
    from openesd.metadata.db import create_db_engine, create_sessionmaker
    from openesd.metadata.migrate import upgrade_to_head
    from openesd.metadata.models import Role, User
    from openesd.tokens.service import token_record
    from openesd.settings import Settings

    engine = create_db_engine(Settings(data_dir=data_dir).resolved_database_url)
    upgrade_to_head(engine)
    with create_sessionmaker(engine)() as session:
        session.add(
            Role(
                name="admins",
                creator="root",
                permissions=["role:all", "user:all", "inference:all", "checkpoint:all", "sagemaker_endpoint:all"],
            )
        )
        session.add(
            Role(
                name="team", creator="root", permissions=["inference:all", "checkpoint:all", "sagemaker_endpoint:list"]
            )
        )
        session.add(User(username="root", creator="root", roles=["admins"]))
        session.add(User(username="tess", creator="root", roles=["team"]))
        session.flush()  # the tokens refer to their users
        session.add_all(token_record(username, "bench", token) for username, token in TOKENS.items())
        session.add_all(_job(number) for number in range(rows))
        models = [_checkpoint(number) for number in range(rows)]
        session.add_all(checkpoint for checkpoint, _ in models)
        session.flush()  # the reserved names refer to their checkpoints
        session.add_all(name for _, name in models)
        session.commit()
    engine.dispose()


def _job(number: int):
    from openesd.metadata.models import InferenceJob

    job_id, created = str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-console-job-{number}")), EPOCH + number * 7.25
    moment = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(created)) + ".123456"
    return InferenceJob(
        id=job_id,
        task_type="txt2img",
        inference_type="Async",
        status="succeed",
        owner_group_or_role=["tess"],
        create_time=moment,
        created=created,
        start_time=moment,
        complete_time=moment,
        image_names=[f"{job_id}_0.png"],
        inference_info_name=f"{job_id}_param.json",
        payload_string=None,
        queued=False,
        attempts=1,
        endpoint_id="e0e0e0e0-0000-4000-8000-000000000001",
        params={
            "sagemaker_inference_endpoint_name": "bench",
            "sagemaker_inference_instance_type": "cpu",
            "output_path": f"file:///data/objects/sagemaker_output/{job_id}.out",
        },
    )


def _checkpoint(number: int):
    from openesd.metadata.models import Checkpoint, CheckpointName

    checkpoint_id, name = (
        str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-console-model-{number}")),
        f"model-{number}.safetensors",
    )
    sha = hashlib.sha256(name.encode()).hexdigest()
    checkpoint = Checkpoint(
        id=checkpoint_id,
        checkpoint_type=("Stable-diffusion", "Lora")[number % 2],
        status="Active",
        names=[name],
        created=EPOCH + number * 7.25,
        allowed_roles_or_users=["team"],
        hashes={name: sha},
        content_hash=sha,
        params={"creator": "tess", "message": "bench", "size": 2_132_625_894, "model_family": "sd1"},
    )
    return checkpoint, CheckpointName(name=name, checkpoint_id=checkpoint_id)


# -- the page loads ------------------------------------------------------------------------------
def jobs_page(client: httpx.Client, me: str) -> int:
    """static/pages/jobs.js: the page of jobs, each shown job's view (images, queue place), the endpoints."""
    listed = _data(client.get("/inferences", params={"limit": JOBS_PER_PAGE}))["inferences"]
    for job in listed:
        _data(client.get(f"/inferences/{job['InferenceJobId']}"))
    _data(client.get("/endpoints", params={"username": me, "limit": 100}))
    return len(listed)


def models_page(client: httpx.Client, me: str) -> int:
    """static/pages/models.js: one page of checkpoints, newest first."""
    return len(_data(client.get("/checkpoints", params={"page": 1, "per_page": MODELS_PER_PAGE}))["checkpoints"])


def _data(answer: httpx.Response) -> dict:
    if answer.status_code != 200:
        raise SystemExit(f"{answer.request.url}: {answer.status_code} {answer.text[:300]}")
    return answer.json()["data"]


def timed(
    bases: list[str], user: str, load: Callable[[httpx.Client, str], int], repeat: int
) -> list[tuple[float, int]]:
    """(fastest seconds of one page load, rows the page shows) on each server. The servers take turns, so a
    neighbour's load on the machine weighs on both alike, and the fastest of `repeat` is the least disturbed
    by it (as `timeit` advises)."""
    headers = {"Authorization": f"Bearer {TOKENS[user]}"}
    clients = [httpx.Client(base_url=base, headers=headers, timeout=60) for base in bases]
    try:
        shown = [0] * len(clients)
        for _ in range(3):
            shown = [load(client, user) for client in clients]
        times: list[list[float]] = [[] for _ in clients]
        for _ in range(repeat):
            for client, spent in zip(clients, times, strict=True):
                begin = time.perf_counter()
                load(client, user)
                spent.append(time.perf_counter() - begin)
    finally:
        for client in clients:
            client.close()
    return [(min(spent), count) for spent, count in zip(times, shown, strict=True)]


def first_paint(base: str, repeat: int) -> float | None:
    """Median first-contentful-paint (ms) of /console/ signed in as the administrator, each in a fresh context."""
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        return None
    from playwright.sync_api import sync_playwright

    paints = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        for _ in range(repeat):
            context = browser.new_context(base_url=base)
            context.add_init_script(f"localStorage.setItem('openesd.token', '{TOKENS['root']}')")
            page = context.new_page()
            page.goto("/console/")
            page.wait_for_selector("#whoami")
            paints.append(page.evaluate("performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null"))
            context.close()
        browser.close()
    found = [paint for paint in paints if paint is not None]
    return statistics.median(found) if found else None


# -- one run -------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10)
    parser.add_argument("--large", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    loads = {"Jobs": jobs_page, "Models": models_page}
    results: dict[tuple[str, str], list[tuple[float, int]]] = {}
    paint = None
    with tempfile.TemporaryDirectory() as scratch:
        servers = []
        try:
            for rows in (args.small, args.large):
                data_dir = Path(scratch) / f"data-{rows}"
                seed(data_dir, rows)
                servers.append(ServerProcess(data_dir, auth_mode="strict", api_keys="bench0123456789ABCDE"))
            for page, load in loads.items():
                for user in TOKENS:
                    results[page, user] = timed([server.base for server in servers], user, load, args.repeat)
            if not args.no_browser:
                paint = first_paint(servers[-1].base, 5)
        finally:
            for server in servers:
                server.stop()
    print(
        f"Console data loads, fastest of {args.repeat}, the two servers taking turns "
        "(strict mode, SQLite, one keep-alive connection)"
    )
    print(f"{'page':8s} {'user':13s} {args.small:>7d} rows {args.large:>7d} rows   ratio   shown")
    for page in loads:
        for user in TOKENS:
            (small, shown_small), (large, shown_large) = results[page, user]
            who = "admin" if user == "root" else "team member"
            print(
                f"{page:8s} {who:13s} {small * 1000:8.1f} ms {large * 1000:8.1f} ms  {large / small:5.2f}x"
                f"   {shown_small}/{shown_large}"
            )
    if not args.no_browser:
        print(
            f"first-contentful-paint of /console/ (signed in, {args.large} rows): "
            + (f"{paint:.0f} ms" if paint is not None else "not measured (no Chromium)")
        )


if __name__ == "__main__":
    main()
