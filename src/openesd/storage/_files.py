"""Atomic file writes that hash the bytes as they pass, so no file is ever read twice.

A writer fills a temporary file beside the destination's filesystem root and renames it into
place only on `commit`; a crash or a dropped connection leaves no half file under the final name.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
from pathlib import Path
from types import TracebackType
from typing import IO

CHUNK = 8 * 1024 * 1024  # one read/write/hash call per 8 MiB: Python's per-call cost vanishes against the copy
_IOV_MAX = 1024  # Linux's limit on buffers per writev


class AtomicWriter:
    """A temporary file that becomes `dest` on `commit`, with its size and the hashes asked for.

    Hashing is the main CPU cost of a multi-GB upload, so each writer computes only what its
    caller reads: a whole-object PUT needs the md5 (its ETag), completed objects the sha256, parts none.
    `durable=False` skips the fsync, for staging files that a later durable write copies.
    """

    def __init__(
        self,
        temp_dir: Path,
        dest: Path | None = None,
        *,
        md5: bool = True,
        sha256: bool = True,
        durable: bool = True,
    ):
        temp_dir.mkdir(parents=True, exist_ok=True)
        self.dest = dest
        self.durable = durable
        self._temp = temp_dir / f".{secrets.token_hex(16)}.tmp"
        # Unbuffered: every write is already large, and writev hands a list of chunks to the kernel in one call.
        self._file: IO[bytes] = open(self._temp, "xb", buffering=0)
        self._md5 = hashlib.md5(usedforsecurity=False) if md5 else None
        self._sha256 = hashlib.sha256() if sha256 else None
        self._hashes = [h for h in (self._md5, self._sha256) if h is not None]
        self.size = 0

    def write(self, data: bytes) -> None:
        self.write_chunks([data])

    def write_chunks(self, chunks: list[bytes]) -> None:
        """Append the chunks as they are (no joining copy), hashing each once."""
        for digest in self._hashes:
            for chunk in chunks:
                digest.update(chunk)
        views = [memoryview(chunk) for chunk in chunks if chunk]
        fd = self._file.fileno()
        while views:
            written = os.writev(fd, views[:_IOV_MAX])
            self.size += written
            while views and written >= len(views[0]):
                written -= len(views.pop(0))
            if written:  # a short write: the rest of that chunk goes next
                views[0] = views[0][written:]

    def copy_from(self, source: IO[bytes]) -> None:
        if not self._hashes and _copy_in_kernel(source, self._file):
            self.size = self._file.tell()
            return
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        while count := source.readinto(view):  # type: ignore[attr-defined]
            self.write(view[:count])  # type: ignore[arg-type]

    @property
    def md5(self) -> str | None:
        return self._md5.hexdigest() if self._md5 else None

    @property
    def sha256(self) -> str | None:
        return self._sha256.hexdigest() if self._sha256 else None

    def commit(self, dest: Path | None = None) -> Path:
        """Flush to disk and rename into place (at `dest` if given), replacing any file there."""
        dest = dest or self.dest
        if dest is None:
            raise ValueError(f"no destination to commit {self._temp} to")
        if self.durable:
            os.fsync(self._file.fileno())
        self._file.close()
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._temp, dest)
        return dest

    def discard(self) -> None:
        self._file.close()
        self._temp.unlink(missing_ok=True)

    def __enter__(self) -> AtomicWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Committing is explicit; leaving the block any other way throws the bytes away.
        if not self._file.closed:
            self.discard()


def _copy_in_kernel(source: IO[bytes], dest: IO[bytes]) -> bool:
    """Append `source` (from its position) to `dest` without the bytes passing through Python; False when
    the filesystem pair cannot (then nothing was copied)."""
    copied = 0
    try:
        while count := os.copy_file_range(source.fileno(), dest.fileno(), 1 << 30):
            copied += count
    except (OSError, AttributeError, ValueError):
        if copied:
            raise
        return False
    return True


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def prune_empty_parents(path: Path, stop: Path) -> None:
    """Remove empty folders from `path` upwards, stopping below `stop`."""
    current = path
    while current != stop and stop in current.parents:
        try:
            current.rmdir()
        except OSError:
            return
        current = current.parent
