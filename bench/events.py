"""Live job events: the delay from a published event to a client receiving it, and what 200 idle open event
streams cost a real `openesd serve` (CPU, memory) against 200 clients polling `GET /inferences/{id}` once a
second, the polling an SDK did before the streams (and still does on an older server).

Usage: .venv/bin/python bench/events.py [--streams 200] [--events 200] [--window 20] [--postgres]

One invocation, one machine: the server is a subprocess on SQLite (with `--postgres`, on a throwaway PostgreSQL
server, where LISTEN/NOTIFY wakes the streams); events are published from this process
through `publish` in its own transactions, as another replica or the engine's reporter writes them, so the
delay includes the server noticing the new row (its bell). The figures to report are the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from openesd.jobevents.publish import publish  # noqa: E402
from openesd.metadata.db import create_db_engine, create_sessionmaker  # noqa: E402
from openesd.metadata.models import InferenceJob  # noqa: E402
from tests.support.server import ServerProcess  # noqa: E402

API_KEY = "benchEventsKey0123456789"
HEADERS = {"x-api-key": API_KEY, "username": "api"}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0  # utime, stime in clock ticks (100 Hz)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def add_job(make_session) -> str:
    job_id = str(uuid.uuid4())
    with make_session.begin() as session:
        session.add(
            InferenceJob(
                id=job_id,
                task_type="txt2img",
                inference_type="Async",
                status="inprogress",
                owner_group_or_role=["api"],
                create_time="2026-12-07 00:00:00",
                created=time.time(),
                params={},
                queued=True,
            )
        )
    return job_id


async def hold_streams(base: str, count: int, stop: asyncio.Event) -> None:
    async def one(client: httpx.AsyncClient) -> None:
        async with client.stream("GET", f"{base}/prod/events", headers=HEADERS) as response:
            async for _ in response.aiter_lines():
                if stop.is_set():
                    return

    async with httpx.AsyncClient(timeout=None, limits=httpx.Limits(max_connections=count + 10)) as client:
        tasks = [asyncio.create_task(one(client)) for _ in range(count)]
        await stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def poll_jobs(base: str, count: int, job_id: str, stop: asyncio.Event) -> None:
    async def one(client: httpx.AsyncClient, offset: float) -> None:
        await asyncio.sleep(offset)
        while not stop.is_set():
            await client.get(f"{base}/prod/inferences/{job_id}", headers=HEADERS)
            await asyncio.sleep(1.0)

    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=count + 10)) as client:
        await asyncio.gather(*(one(client, n / count) for n in range(count)))


async def cost(pid: int, window: float, load) -> tuple[float, float]:
    """Server CPU seconds per second and RSS (MiB) while `load` runs for `window` seconds (after 3 s to settle)."""
    stop = asyncio.Event()
    task = asyncio.create_task(load(stop))
    await asyncio.sleep(3.0)
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(window)
    cpu = (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
    rss = rss_mib(pid)
    stop.set()
    await task
    return cpu, rss


def delays(base: str, make_session, count: int) -> list[float]:
    """Publish `count` events 50 ms apart; each one's delay until the stream hands it to this client."""
    got: list[float] = []
    marker = uuid.uuid4().hex

    def reader() -> None:
        with httpx.stream("GET", f"{base}/prod/events", headers=HEADERS, timeout=60) as response:
            for line in response.iter_lines():
                if line.startswith("data: ") and marker in line:
                    got.append(time.time() - json.loads(line[6:])["sent"])
                    if len(got) == count:
                        return

    import threading

    thread = threading.Thread(target=reader)
    thread.start()
    time.sleep(1.0)
    for n in range(count):
        with make_session.begin() as session:
            data = {"sent": time.time(), "marker": marker, "n": n}
            publish(session, job_kind="inference", job_id="bench", owner="api", kind="step", data=data)
        time.sleep(0.05)
    thread.join(60)
    return got


@contextmanager
def database(postgres: bool, tmp: Path) -> Iterator[str]:
    if not postgres:
        yield f"sqlite:///{tmp / 'openesd.db'}"
        return
    from tests.conftest import PostgresServer, _pg_binary

    server = PostgresServer(_pg_binary("initdb"), _pg_binary("pg_ctl"))
    server.start()
    try:
        server.admin('CREATE DATABASE "bench_events"')
        yield server.url("bench_events")
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, database(args.postgres, Path(tmp)) as url:
        data_dir = Path(tmp) / "data"
        server = ServerProcess(data_dir, api_keys=API_KEY, database_url=url)
        try:
            make_session = create_sessionmaker(create_db_engine(url))
            job_id = add_job(make_session)
            pid = server.process.pid
            idle = asyncio.run(cost(pid, args.window, lambda stop: stop.wait()))
            streams = asyncio.run(cost(pid, args.window, lambda stop: hold_streams(server.base, args.streams, stop)))
            polling = asyncio.run(
                cost(pid, args.window, lambda stop: poll_jobs(server.base, args.streams, job_id, stop))
            )
            lone = delays(server.base, make_session, args.events)
        finally:
            server.stop()
    ms = sorted(d * 1000 for d in lone)
    print("database:", "PostgreSQL" if args.postgres else "SQLite")
    print(
        f"delay publish -> client, {len(ms)} events: median {statistics.median(ms):.1f} ms, "
        f"p99 {ms[min(len(ms) - 1, int(len(ms) * 0.99))]:.1f} ms"
    )
    print(f"server idle:                       CPU {idle[0] * 100:5.1f} %  RSS {idle[1]:6.1f} MiB")
    print(f"{args.streams} idle event streams:        CPU {streams[0] * 100:5.1f} %  RSS {streams[1]:6.1f} MiB")
    print(f"{args.streams} clients polling GET 1/s:  CPU {polling[0] * 100:5.1f} %  RSS {polling[1]:6.1f} MiB")
    extra_streams, extra_polling = streams[0] - idle[0], polling[0] - idle[0]
    print(
        f"CPU above idle: streams {extra_streams * 100:.1f} %, polling {extra_polling * 100:.1f} % "
        f"(polling / streams = {extra_polling / max(extra_streams, 1e-4):.1f}x); "
        f"memory above idle: streams {streams[1] - idle[1]:.1f} MiB, polling {polling[1] - idle[1]:.1f} MiB"
    )


if __name__ == "__main__":
    main()
