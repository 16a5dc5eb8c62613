"""Multipart uploads of the local store assembled in place: a part PUT writes straight into the upload's one
data file at its offset, and the finished prefix of parts is hashed and flushed in the background, so that
completion is left with the tail (no join, no second pass over the bytes).

An upload folder holds `key`, `parts` (how many URLs were signed), `part-size` (fixed by the first non-last
part to arrive), `data`, and per part: `NNNNN.claim` (the one PUT allowed to write the part's region of
`data`), `NNNNN.<etag>.placed` (that PUT finished; the text is its offset) or `NNNNN.<etag>` (a part that
could not go in place, e.g. a re-sent one, held in its own file as before).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openesd.storage._files import CHUNK
from openesd.storage.errors import BadPart, UploadNotFound

DATA, COUNT, PART_SIZE = "data", "parts", "part-size"
_PLACED, _CLAIM = ".placed", ".claim"
_IOV_MAX = 1024
LOCK_WAIT_S = 30.0  # completion waits this long for part PUTs still writing into the data file


@dataclass(frozen=True)
class PartBytes:
    """Where one uploaded part's bytes are: in the data file (`placed`) or in a file of their own."""

    number: int
    etag: str
    path: Path
    offset: int
    size: int
    placed: bool


def start(folder: Path, parts: int) -> None:
    """Ready a new upload of `parts` parts for in-place writes."""
    (folder / COUNT).write_text(str(parts))
    (folder / DATA).touch()


def place(folder: Path, part: int, length: int | None) -> int | None:
    """The offset where `part` (of `length` bytes) goes in the data file, or None when it cannot go in place:
    unknown length, a size unlike the other parts', the part size not known yet, or the part already claimed."""
    count = _read_int(folder / COUNT)
    if length is None or count is None or not 1 <= part <= count:
        return None
    if count == 1:
        offset: int | None = 0
    elif part < count:
        offset = (part - 1) * length if _part_size(folder, length) == length else None
    else:
        size = _read_int(folder / PART_SIZE)
        offset = None if size is None else (part - 1) * size
    if offset is None or not _claim(folder, part):
        return None
    return offset


class PlacedPart:
    """One part PUT writing at its offset in the upload's data file; `commit` answers its ETag."""

    def __init__(self, folder: Path, part: int, offset: int, landed: Callable[[], None]):
        self._folder, self._part, self._offset, self._landed = folder, part, offset, landed
        self.size = 0
        try:
            self._fd = os.open(folder / DATA, os.O_WRONLY)
        except FileNotFoundError:
            _unclaim(folder, part)
            raise UploadNotFound(f"the multipart upload in {folder.name} is gone") from None
        # Shared with other parts; completion takes it exclusively and then moves `data` away. Never waited for:
        # this runs on the event loop, and a completion in progress means the part comes too late anyway.
        try:
            fcntl.flock(self._fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            self.discard()
            raise BadPart(
                f"the multipart upload in {folder.name} is being completed; part {part} came too late"
            ) from None
        if not _same_file(self._fd, folder / DATA):
            self.discard()
            raise UploadNotFound(f"the multipart upload in {folder.name} was completed or aborted")

    def write(self, data: bytes) -> None:
        self.write_chunks([data])

    def write_chunks(self, chunks: list[bytes]) -> None:
        views = [memoryview(chunk) for chunk in chunks if chunk]
        while views:
            written = os.pwritev(self._fd, views[:_IOV_MAX], self._offset + self.size)
            self.size += written
            while views and written >= len(views[0]):
                written -= len(views.pop(0))
            if written:
                views[0] = views[0][written:]

    def commit(self) -> str:
        etag = f"{secrets.token_hex(8)}-{self.size}"
        marker = self._folder / f"{self._part:05d}.{etag}{_PLACED}"
        try:
            marker.write_text(str(self._offset))
        except FileNotFoundError:
            self.discard()
            raise UploadNotFound(f"the multipart upload in {self._folder.name} is gone") from None
        drop_stale(self._folder, self._part, keep=marker)
        os.close(self._fd)
        self._landed()
        return f'"{etag}"'

    def discard(self) -> None:
        """A part cut off: its region is free for the next PUT of the part to write."""
        _unclaim(self._folder, self._part)
        try:
            os.close(self._fd)
        except OSError:
            pass


def drop_stale(folder: Path, part: int, keep: Path) -> None:
    """A part uploaded again replaces the earlier bytes, as on S3 (the claim stays: its region is spent)."""
    for stale in folder.glob(f"{part:05d}.*"):
        if stale != keep and stale.suffix != _CLAIM:
            stale.unlink(missing_ok=True)


def uploaded(folder: Path, number: int) -> list[PartBytes]:
    """Every stored version of part `number` (normally one), oldest name first."""
    found = []
    for path in sorted(folder.glob(f"{number:05d}.*")):
        name = path.name.split(".", 1)[1]
        if name == _CLAIM[1:]:
            continue
        if name.endswith(_PLACED):
            etag = name[: -len(_PLACED)]
            offset = _read_int(path)
            if offset is not None:
                found.append(PartBytes(number, etag, folder / DATA, offset, _etag_size(etag), True))
        else:
            found.append(PartBytes(number, name, path, 0, path.stat().st_size, False))
    return found


def _etag_size(etag: str) -> int:
    return int(etag.rpartition("-")[2])


class PrefixHasher:
    """The sha256 of parts 1..k placed one after another from offset 0, taken in the background as they land,
    with the state before each part kept so a part replaced later rewinds only to it."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._lock = threading.Lock()
        self._digest: Any = hashlib.sha256()
        self._position = 0
        self._done: list[tuple[int, str, Any]] = []  # (number, etag, digest before it)
        self._stopped = False

    def advance(self) -> None:
        with self._lock:
            try:
                while not self._stopped and self._advance_one():
                    pass
            except OSError:
                self._stopped = True  # the upload was completed or aborted under us; completion hashes itself

    def _advance_one(self) -> bool:
        number = len(self._done) + 1
        parts = [p for p in uploaded(self.folder, number) if p.placed and p.offset == self._position]
        if not parts:
            return False
        part = parts[-1]
        before = self._digest.copy()
        with open(self.folder / DATA, "rb", buffering=0) as source:
            hash_range(source.fileno(), part.offset, part.size, self._digest)
        self._done.append((part.number, part.etag, before))
        self._position += part.size
        return True

    def stop(self, parts: list[PartBytes]) -> tuple[Any, int]:
        """Stop, and give the digest of the longest prefix of `parts` that was hashed as it is, and its end."""
        with self._lock:
            self._stopped = True
            kept = 0
            for (number, etag, _), part in zip(self._done, parts):
                if (number, etag) != (part.number, part.etag) or not part.placed:
                    break
                kept += 1
            if kept == len(self._done):
                return self._digest.copy(), self._position
            return self._done[kept][2].copy(), sum(p.size for p in parts[:kept])


def flush(folder: Path) -> None:
    """Write the data file's landed parts to disk now, in the background, so the final fsync has little left."""
    try:
        fd = os.open(folder / DATA, os.O_RDONLY)
    except OSError:
        return  # completed or aborted meanwhile
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


def hash_range(fd: int, offset: int, size: int, digest: Any) -> None:
    """Feed bytes [offset, offset + size) of the open file to `digest`, 8 MiB at a time into one buffer."""
    buffer = memoryview(bytearray(min(CHUNK, max(size, 1))))
    end = offset + size
    while offset < end:
        count = os.preadv(fd, [buffer[: min(len(buffer), end - offset)]], offset)
        if count == 0:
            raise BadPart(f"the upload's data file ends at {offset}, before {end}")
        digest.update(buffer[:count])
        offset += count


def lock_for_completion(fd: int, key: str) -> None:
    """Wait for part PUTs still writing (a client that completes early) and keep new ones out."""
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise BadPart(f"a part of {key} is still being uploaded; complete once every part PUT has answered")
            time.sleep(0.05)


def _part_size(folder: Path, length: int) -> int | None:
    """The upload's part size: the first non-last part to arrive fixes it (O_EXCL: one writer wins)."""
    path = folder / PART_SIZE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return _read_int(path)
    with os.fdopen(fd, "w") as out:
        out.write(str(length))
    return length


def _claim(folder: Path, part: int) -> bool:
    try:
        os.close(os.open(folder / f"{part:05d}{_CLAIM}", os.O_WRONLY | os.O_CREAT | os.O_EXCL))
    except (FileExistsError, FileNotFoundError):
        return False
    return True


def _unclaim(folder: Path, part: int) -> None:
    (folder / f"{part:05d}{_CLAIM}").unlink(missing_ok=True)


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _read_int(path: Path) -> int | None:
    for _ in range(20):  # a file another thread just created may not hold its text yet
        try:
            text = path.read_text().strip()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if text.isdigit():
            return int(text)
        time.sleep(0.001)
    return None
