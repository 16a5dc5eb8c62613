"""Parallel, resumable multipart upload of one file to signed part URLs.

The state (checkpoint id, part URLs, finished parts with their ETags) is written to a small JSON
file after every finished part, so an interrupted upload resumes by sending only the missing parts.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from openesd.client import _sendfile
from openesd.client._transport import ESDError, Transport

Progress = Callable[[int, int], None]
_CHUNK = 8 << 20  # large reads: the per-chunk cost of the client stays far below the copy


@dataclass
class UploadState:
    """What a resumed upload needs; `parts` maps part number (as a string, JSON keys) to its ETag."""

    file: str
    size: int
    mtime: float
    part_size: int
    checkpoint_id: str
    checkpoint_type: str
    filename: str
    urls: list[str]
    parts: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> UploadState | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        os.replace(tmp, path)

    def matches(self, file: Path) -> bool:
        """The same file, unchanged since the upload began."""
        stat = file.stat()
        return self.file == str(file.resolve()) and self.size == stat.st_size and self.mtime == stat.st_mtime

    def missing(self) -> list[int]:
        return [n for n in range(1, len(self.urls) + 1) if str(n) not in self.parts]

    def part_range(self, number: int) -> tuple[int, int]:
        start = (number - 1) * self.part_size
        return start, min(self.size, start + self.part_size) - start

    def tags(self) -> list[dict]:
        return [{"ETag": self.parts[str(n)], "PartNumber": n} for n in sorted(map(int, self.parts))]


def parts_for(size: int, part_size: int) -> int:
    """ESD allows 1..100 parts per file; an empty file is still one (empty) part."""
    count = max(1, -(-size // part_size))
    if count > 100:
        raise ValueError(
            f"part_size {part_size} gives {count} parts; ESD allows at most 100 (use part_size >= {-(-size // 100)})"
        )
    return count


class PartUploader:
    """Sends the missing parts of `state` with `parallel` threads, retrying each a bounded number of times."""

    def __init__(
        self,
        transport: Transport,
        state: UploadState,
        state_path: Path | None,
        *,
        parallel: int = 4,
        retries: int = 3,
        backoff: float = 0.5,
        progress: Progress | None = None,
    ):
        self.transport, self.state, self.state_path = transport, state, state_path
        self.parallel, self.retries, self.backoff = max(1, parallel), retries, backoff
        self.progress = progress
        self._lock = threading.Lock()
        self._done = sum(state.part_range(int(n))[1] for n in state.parts)

    def run(self) -> None:
        self._report(0)
        missing = self.state.missing()
        pool = ThreadPoolExecutor(max_workers=min(self.parallel, max(1, len(missing))))
        try:
            # list() re-raises the first part that failed for good.
            list(pool.map(self._send_part, missing))
        finally:
            # On a failure or Ctrl-C, parts not yet begun are dropped (the state file keeps the finished
            # ones for a resume); parts in flight finish so their ETags are saved.
            pool.shutdown(wait=True, cancel_futures=True)

    def _send_part(self, number: int) -> None:
        for attempt in range(self.retries + 1):
            sent = [0]
            try:
                etag = self._put(number, sent)
            except (httpx.TransportError, ESDError) as exc:
                self._report(-sent[0])
                if attempt == self.retries or not _retryable(exc):
                    raise _part_error(number, exc) from exc
                time.sleep(self.backoff * 2**attempt)
                continue
            self._finish(number, etag)
            return

    def _put(self, number: int, sent: list[int]) -> str:
        start, length = self.state.part_range(number)
        url = self.state.urls[number - 1]
        if self.transport.raw_sockets and _sendfile.direct(url):
            etag = _sendfile.put_range(url, self.state.file, start, length, lambda count: self._sent(sent, count))
        else:
            etag = self._put_httpx(number, start, length, sent)
        if not etag:
            raise ESDError(0, f"part {number}: the storage answered without an ETag header")
        return etag

    def _sent(self, sent: list[int], count: int) -> None:
        sent[0] += count
        self._report(count)

    def _put_httpx(self, number: int, start: int, length: int, sent: list[int]) -> str:
        headers = {"Content-Length": str(length)}
        response = self.transport.put_object(self.state.urls[number - 1], self._chunks(start, length, sent), headers)
        return response.headers.get("ETag") or ""

    def _chunks(self, start: int, length: int, sent: list[int]) -> Iterator[bytes]:
        with open(self.state.file, "rb") as source:
            source.seek(start)
            left = length
            while left > 0:
                chunk = source.read(min(_CHUNK, left))
                if not chunk:
                    raise ESDError(0, f"{self.state.file} got shorter while uploading")
                left -= len(chunk)
                self._sent(sent, len(chunk))
                yield chunk

    def _finish(self, number: int, etag: str) -> None:
        with self._lock:
            self.state.parts[str(number)] = etag
            if self.state_path:
                self.state.save(self.state_path)

    def _report(self, delta: int) -> None:
        with self._lock:
            self._done += delta
            done = self._done
        if self.progress:
            self.progress(done, self.state.size)


def _retryable(exc: Exception) -> bool:
    # Connection trouble and server-side errors may pass; a refused signature (403) or a bad
    # request will not get better by sending the same bytes again.
    return not isinstance(exc, ESDError) or exc.status == 0 or exc.status >= 500 or exc.status == 429


def _part_error(number: int, exc: Exception) -> ESDError:
    status = exc.status if isinstance(exc, ESDError) else 0
    message = exc.message if isinstance(exc, ESDError) else str(exc) or type(exc).__name__
    return ESDError(status, f"part {number} failed: {message}")
