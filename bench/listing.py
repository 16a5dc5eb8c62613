"""Job listing under load: `GET /inferences?limit=10` from many clients against `GET /ping` on the same server.

Usage: .venv/bin/python bench/listing.py [--clients 50] [--seconds 20] [--jobs 1000] [--auth-mode compat]

One invocation: a fixed data set (`--jobs` txt2img jobs of five users, written to the database before the
server starts) behind a real `openesd serve` on loopback; then `--clients` concurrent clients (one asyncio
task and one keep-alive connection each) call `GET /ping` for `--seconds`, then the listing for as long. The
figures to report are the listing's requests/s and p50/p99 next to /ping's, which measures the HTTP stack,
the API key and the client itself on the same CPU. In strict mode the clients send the token of a team
member who sees the jobs of one user in five (the visibility filter has work to do).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.server import ServerProcess  # noqa: E402  (the server the tests start, started the same way)

KEY = "bench0123456789ABCDE"
USERS = ("api", "alice", "bob", "carol", "dave")
READER, READER_TOKEN = "alice", "oesd_bench-listing-reader-token-0123456789"
EPOCH = 1_750_000_000.0  # the data set's first createTime: fixed, so every run lists the same pages


# -- the data set --------------------------------------------------------------------------------
def seed(data_dir: Path, jobs: int) -> None:
    """`jobs` finished txt2img jobs round-robin over USERS, a team role, and READER's token."""
    from openesd.metadata.db import create_db_engine, create_sessionmaker
    from openesd.metadata.migrate import upgrade_to_head
    from openesd.metadata.models import Role, User
    from openesd.tokens.service import token_record
    from openesd.settings import Settings

    engine = create_db_engine(Settings(data_dir=data_dir).resolved_database_url)
    upgrade_to_head(engine)
    with create_sessionmaker(engine)() as session:
        session.add(Role(name="team", creator="api", permissions=["inference:all", "endpoint:all"]))
        session.add_all(User(username=name, creator="api", roles=["team"]) for name in USERS)
        session.flush()  # the token refers to its user
        session.add(token_record(READER, "bench", READER_TOKEN))
        session.add_all(_job(number) for number in range(jobs))
        session.commit()
    engine.dispose()


def _job(number: int):
    from openesd.metadata.models import InferenceJob

    job_id, created = str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-job-{number}")), EPOCH + number * 7.25
    moment = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(created)) + ".123456"
    model = {
        "id": "3f6a8c1e-0000-4000-8000-000000000001",
        "model_name": "v1-5-pruned-emaonly.safetensors",
        "s3": "file:///data/objects/Stable-diffusion/checkpoint/custom/3f6a8c1e",
        "type": "Stable-diffusion",
    }
    return InferenceJob(
        id=job_id,
        task_type="txt2img",
        inference_type="Async",
        status="succeed",
        owner_group_or_role=[USERS[number % len(USERS)]],
        create_time=moment,
        created=created,
        start_time=moment,
        complete_time=moment,
        image_names=[f"{job_id}_0.png"],
        inference_info_name=f"{job_id}_param.json",
        payload_string=None,
        endpoint_id="e0e0e0e0-0000-4000-8000-000000000001",
        queued=False,
        attempts=1,
        params={
            "input_body_s3": f"file:///data/objects/txt2img/infer_v2/{job_id}/api_param.json",
            "sagemaker_inference_endpoint_id": "e0e0e0e0-0000-4000-8000-000000000001",
            "sagemaker_inference_instance_type": "cpu",
            "sagemaker_inference_endpoint_name": "bench",
            "used_models": {"Stable-diffusion": [model]},
            "output_path": f"file:///data/objects/sagemaker_output/{job_id}.out",
        },
    )


# -- the load ------------------------------------------------------------------------------------
class Connection:
    """One keep-alive HTTP/1.1 connection on asyncio streams. Cheap on purpose: with 50 httpx clients the
    client process took the CPU (135 /ping requests/s against 1,389 with these) on a 2-core machine."""

    def __init__(self, host: str, port: int, headers: dict):
        self.host, self.port = host, port
        lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self.head = f"Host: {host}:{port}\r\n{lines}\r\n".encode()

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        self.writer.close()

    async def get(self, path: str) -> int:
        """The answer's status; its body is read and dropped."""
        self.writer.write(f"GET {path} HTTP/1.1\r\n".encode() + self.head)
        status_line, *header_lines = (await self.reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")
        fields = dict(line.split(": ", 1) for line in header_lines if line)
        length = next((int(value) for name, value in fields.items() if name.lower() == "content-length"), None)
        if length is None:
            raise SystemExit(f"{path}: an answer without Content-Length ({status_line}); this client reads no other")
        await self.reader.readexactly(length)
        return int(status_line.split()[1])


async def load(base: str, path: str, headers: dict, clients: int, seconds: float) -> tuple[list[float], int]:
    """Latencies (s) of the requests sent within `seconds`, and how many answered other than 200."""
    url = httpx.URL(base)
    latencies: list[float] = []
    failures = 0

    async def client(connection: Connection, deadline: float) -> None:
        nonlocal failures
        while (begin := time.perf_counter()) < deadline:
            status = await connection.get(path)
            latencies.append(time.perf_counter() - begin)
            failures += status != 200

    connections = [Connection(url.host, url.port, headers) for _ in range(clients)]
    for connection in connections:  # connected before the clock starts
        await connection.open()
    try:
        deadline = time.perf_counter() + seconds
        await asyncio.gather(*(client(connection, deadline) for connection in connections))
    finally:
        for connection in connections:
            connection.close()
    return latencies, failures


def figures(name: str, latencies: list[float], failures: int, seconds: float) -> float:
    rate = len(latencies) / seconds
    cuts = statistics.quantiles(latencies, n=100)
    print(
        f"{name:32s}: {rate:7.1f} requests/s  p50 {cuts[49] * 1000:7.1f} ms  p99 {cuts[98] * 1000:7.1f} ms"
        f"  ({len(latencies)} requests, {failures} not 200)"
    )
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of each of the two runs")
    parser.add_argument("--jobs", type=int, default=1000, help="jobs in the data set")
    parser.add_argument("--auth-mode", choices=("compat", "strict"), default="compat")
    args = parser.parse_args()
    headers = {"x-api-key": KEY, "username": "api"}
    if args.auth_mode == "strict":
        headers = {"x-api-key": KEY, "authorization": f"Bearer {READER_TOKEN}"}
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = Path(scratch) / "data"
        seed(data_dir, args.jobs)
        server = ServerProcess(data_dir, api_keys=KEY, auth_mode=args.auth_mode)
        try:
            listing = "/prod/inferences?limit=10"
            first = httpx.get(server.base + listing, headers=headers).json()
            assert len(first["data"]["inferences"]) == 10, first
            ping = asyncio.run(load(server.base, "/prod/ping", headers, args.clients, args.seconds))
            listed = asyncio.run(load(server.base, listing, headers, args.clients, args.seconds))
        finally:
            server.stop()
    print(
        f"{args.jobs} txt2img jobs of {len(USERS)} users, {args.clients} clients, {args.seconds:g} s each, "
        f"auth mode {args.auth_mode}"
    )
    ping_rate = figures("GET /ping", *ping, args.seconds)
    list_rate = figures("GET /inferences?limit=10", *listed, args.seconds)
    print(f"listing / ping requests/s: {list_rate / ping_rate:.2f}")


if __name__ == "__main__":
    main()
