"""Multipart upload throughput through a real `openesd serve` (local store) vs. a plain file copy.

Usage: .venv/bin/python bench/upload.py [--size-mb 1024] [--parts 8] [--workers 4]

Both run in one invocation on the same disk; the figure to report is the ratio.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "src")]

from openesd.client import Client  # noqa: E402
from tests.support.server import ServerProcess  # noqa: E402  (the server the tests start, started the same way)

KEY = "bench0123456789ABCDE"


def make_file(path: Path, size_mb: int) -> None:
    """A valid safetensors file (one uint8 tensor of random bytes): completion checks the header."""
    data = size_mb * 1024 * 1024
    header = json.dumps({"blob": {"dtype": "U8", "shape": [data], "data_offsets": [0, data]}}).encode()
    header += b" " * (-len(header) % 8)
    block = os.urandom(1024 * 1024)
    with open(path, "wb") as out:
        out.write(len(header).to_bytes(8, "little") + header)
        for _ in range(size_mb):
            out.write(block)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def upload(base: str, path: Path, parts: int, workers: int) -> str:
    """The SDK's own upload (what `openesd checkpoints upload` runs): parallel part PUTs, then completion."""
    client = Client(base, KEY)
    part_size = -(-path.stat().st_size // parts)
    started = time.perf_counter()
    done = client.checkpoints.upload(path, "Stable-diffusion", part_size=part_size, parallel=workers)
    print(f"  upload + completion (the sha256 tail, fsync, rename) {time.perf_counter() - started:.2f} s")
    return client.checkpoints.get(done.checkpoint["id"])["hash"]


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
    print(f"SDK multipart upload: {upload_s:7.2f} s  {mb / upload_s:8.1f} MiB/s  (incl. completion + sha256)")
    print(f"ratio (API / copy throughput): {copy_s / upload_s:.2f}")


if __name__ == "__main__":
    main()
