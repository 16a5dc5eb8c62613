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

CHUNK = 1024 * 1024


class AtomicWriter:
    """A temporary file that becomes `dest` on `commit`, with its size and the hashes asked for.

    Hashing is the main CPU cost of a multi-GB upload, so each writer computes only what its
    caller reads: parts need the md5 (their ETag), completed objects the sha256.
    """

    def __init__(self, temp_dir: Path, dest: Path | None = None, *, md5: bool = True, sha256: bool = True):
        temp_dir.mkdir(parents=True, exist_ok=True)
        self.dest = dest
        self._temp = temp_dir / f".{secrets.token_hex(16)}.tmp"
        self._file: IO[bytes] = open(self._temp, "xb")
        self._md5 = hashlib.md5(usedforsecurity=False) if md5 else None
        self._sha256 = hashlib.sha256() if sha256 else None
        self._hashes = [h for h in (self._md5, self._sha256) if h is not None]
        self.size = 0

    def write(self, data: bytes) -> None:
        self._file.write(data)
        for digest in self._hashes:
            digest.update(data)
        self.size += len(data)

    def copy_from(self, source: IO[bytes]) -> None:
        while chunk := source.read(CHUNK):
            self.write(chunk)

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
        self._file.flush()
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
