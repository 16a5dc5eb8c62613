"""Multipart upload throughput through a real `openesd serve` (local store) vs. a plain file copy.

Usage: .venv/bin/python bench/upload.py [--size-mb 1024] [--parts 8] [--workers 4]

Both run in one invocation on the same disk; the figure to report is the ratio.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.server import ServerProcess  # noqa: E402  (the server the tests start, started the same way)

KEY = "bench0123456789ABCDE"


def make_file(path: Path, size_mb: int) -> None:
    block = os.urandom(1024 * 1024)
    with open(path, "wb") as out:
        for _ in range(size_mb):
            out.write(block)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def upload(base: str, path: Path, parts: int, workers: int) -> str:
    headers = {"x-api-key": KEY, "username": "api"}
    size = path.stat().st_size
    chunk = -(-size // parts)
    created = httpx.post(
        f"{base}/prod/checkpoints",
        headers=headers,
        timeout=60,
        json={
            "checkpoint_type": "Stable-diffusion",
            "params": {},
            "filenames": [{"filename": path.name, "parts_number": parts}],
        },
    ).json()["data"]
    urls = created["s3PresignUrl"][path.name]

    def send(number: int) -> dict:
        with open(path, "rb") as handle:
            handle.seek((number - 1) * chunk)
            data = handle.read(chunk)
        response = httpx.put(urls[number - 1], content=data, timeout=600)
        response.raise_for_status()
        return {"ETag": response.headers["ETag"], "PartNumber": number}

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        tags = list(pool.map(send, range(1, parts + 1)))
    parts_s = time.perf_counter() - started
    done = httpx.put(
        f"{base}/prod/checkpoints/{created['checkpoint']['id']}",
        headers=headers,
        timeout=600,
        json={"status": "Active", "multi_parts_tags": {path.name: tags}},
    )
    done.raise_for_status()
    print(f"  part PUTs {parts_s:.2f} s, completion (join + sha256) {time.perf_counter() - started - parts_s:.2f} s")
    listed = httpx.get(f"{base}/prod/checkpoints", headers=headers).json()["data"]["checkpoints"]
    return listed[0]["hash"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--parts", type=int, default=8)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=".") as scratch:
        root = Path(scratch)
        source = root / "model.safetensors"
        make_file(source, args.size_mb)
        start = time.perf_counter()
        shutil.copyfile(source, root / "copy.safetensors")
        _fsync(root / "copy.safetensors")  # the store makes every object durable; so does the baseline
        copy_s = time.perf_counter() - start
        (root / "copy.safetensors").unlink()
        server = ServerProcess(root / "data", api_keys=KEY)
        try:
            start = time.perf_counter()
            stored_hash = upload(server.base, source, args.parts, args.workers)
            upload_s = time.perf_counter() - start
        finally:
            server.stop()
        expected = hashlib.sha256(source.read_bytes()).hexdigest()
    assert stored_hash == expected, "stored file hash differs from the source"
    mb = args.size_mb
    print(f"file: {mb} MiB in {args.parts} parts, {args.workers} parallel PUTs")
    print(f"plain copy + fsync: {copy_s:7.2f} s  {mb / copy_s:8.1f} MiB/s")
    print(f"multipart via API : {upload_s:7.2f} s  {mb / upload_s:8.1f} MiB/s  (incl. completion + sha256)")
    print(f"ratio (API / copy throughput): {copy_s / upload_s:.2f}")


if __name__ == "__main__":
    main()
