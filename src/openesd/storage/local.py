"""`file:///abs/dir`: objects as files under one root folder, signed URLs served by the API itself.

Every write goes through a temporary file and a rename, so a crash never leaves a half file under
a key; a multipart upload is assembled in place in a staging folder inside the root (`_assembly`) and
renamed under its key when it completes.
"""

from __future__ import annotations

import builtins
import hashlib
import os
import re
import secrets
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO
from urllib.parse import urlparse
from urllib.request import url2pathname

from openesd.errors import BadRequest, ConfigurationError
from openesd.settings import Settings
from openesd.storage._assembly import (
    DATA,
    PartBytes,
    PlacedPart,
    PrefixHasher,
    drop_stale,
    flush,
    hash_range,
    lock_for_completion,
    place,
    start,
    uploaded,
)
from openesd.storage._files import CHUNK, AtomicWriter, prune_empty_parents, remove_tree
from openesd.storage._keys import check_key, check_prefix
from openesd.storage._parts import bare_etag, check_part_count, ordered_parts
from openesd.storage._signing import SignedTarget, UrlSigner, load_or_create_secret
from openesd.storage.base import SignedMethod, StoredObject
from openesd.storage.errors import BadPart, InvalidKey, ObjectNotFound, UploadNotFound

STAGING = ".openesd-staging"  # reserved top-level folder: temp files and multipart parts
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")


class ObjectWriter:
    """Bytes on their way into the store; `commit` puts them in place and returns the quoted ETag."""

    def __init__(self, writer: AtomicWriter, place: Callable[[AtomicWriter], str]):
        self._writer = writer
        self._place = place

    def write(self, data: bytes) -> None:
        self._writer.write(data)

    def write_chunks(self, chunks: builtins.list[bytes]) -> None:
        self._writer.write_chunks(chunks)

    def commit(self) -> str:
        return f'"{self._place(self._writer)}"'

    def discard(self) -> None:
        self._writer.discard()


class LocalObjectStore:
    """Files under `root`; keys are checked so that no key can reach outside it."""

    def __init__(self, root: Path, signer: UrlSigner):
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()
        self._staging = self.root / STAGING
        self._signer = signer
        # Uploads hashed and flushed as their parts land, by two background threads: hashing is CPU, flushing
        # waits on the disk, and neither should hold up the other (nor the event loop).
        self._hashers: dict[str, PrefixHasher] = {}
        self._hashers_lock = threading.Lock()
        self._hashing = ThreadPoolExecutor(1, thread_name_prefix="upload-sha256")
        self._flushing = ThreadPoolExecutor(1, thread_name_prefix="upload-flush")

    @classmethod
    def from_url(cls, url: str, settings: Settings) -> LocalObjectStore:
        parsed = urlparse(url)
        if parsed.netloc not in ("", "localhost") or not parsed.path.startswith("/"):
            raise ConfigurationError(f"object store URL {url!r} must be file:///absolute/folder")
        secret = load_or_create_secret(settings.data_dir / "signing.key")
        return cls(Path(url2pathname(parsed.path)), UrlSigner(secret, settings.base_url))

    # -- objects --------------------------------------------------------------------------

    def put_bytes(self, key: str, data: bytes) -> StoredObject:
        with self._writer(key) as writer:
            writer.write(data)
            writer.commit()
        return StoredObject(key, writer.size, writer.sha256)

    def put_file(self, key: str, path: Path) -> StoredObject:
        with self._writer(key) as writer, open(path, "rb") as source:
            writer.copy_from(source)
            writer.commit()
        return StoredObject(key, writer.size, writer.sha256)

    def open(self, key: str) -> IO[bytes]:
        path = self.path_for(key)
        try:
            return open(path, "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(f"object {key} not found") from None

    def get_bytes(self, key: str) -> bytes:
        with self.open(key) as handle:
            return handle.read()

    def stat(self, key: str) -> StoredObject | None:
        path = self.path_for(key)
        return StoredObject(key, path.stat().st_size) if path.is_file() else None

    def delete(self, key: str) -> None:
        path = self.path_for(key)
        if path.is_file():
            path.unlink(missing_ok=True)
            prune_empty_parents(path.parent, self.root)

    def delete_prefix(self, prefix: str) -> int:
        found = self.list(prefix)
        for item in found:
            self.delete(item.key)
        return len(found)

    def list(self, prefix: str = "") -> list[StoredObject]:
        folder = self._folder_of(check_prefix(prefix))
        found = []
        for directory, subdirs, files in os.walk(folder):
            subdirs[:] = [name for name in subdirs if Path(directory, name) != self._staging]
            for name in files:
                key = Path(directory, name).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    found.append(StoredObject(key, Path(directory, name).stat().st_size))
        return sorted(found, key=lambda item: item.key)

    def move(self, source: str, dest: str) -> None:
        source_path, dest_path = self.path_for(source), self.path_for(dest)
        if not source_path.is_file():
            raise ObjectNotFound(f"object {source} not found")
        dest_path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source_path, dest_path)  # same filesystem: atomic, no copy
        prune_empty_parents(source_path.parent, self.root)

    def uri(self, key: str) -> str:
        check_prefix(key)
        if key.split("/", 1)[0] == STAGING:
            raise InvalidKey(f"object key {key!r} is inside the reserved folder {STAGING}")
        return (self.root / key).as_uri() if key else self.root.as_uri()

    def download(self, key: str, dest: Path) -> Path:
        dest = Path(dest)
        with self.open(key) as source, AtomicWriter(dest.parent, dest, md5=False, sha256=False) as writer:
            writer.copy_from(source)
            writer.commit()
        return dest

    # -- signed URLs ----------------------------------------------------------------------

    def signed_url(self, key: str, method: SignedMethod, expires_in: int) -> str:
        self.path_for(key)
        if method not in ("GET", "PUT"):
            raise BadRequest(f"signed URLs are for GET or PUT, not {method!r}")
        return self._signer.sign(SignedTarget(method, key), expires_in)

    def verify(self, method: str, key: str, query: dict[str, str]) -> SignedTarget:
        """What a request to a signed URL may do, or SignatureError saying why it may not."""
        self.path_for(key)
        return self._signer.verify(method, key, query)

    # -- multipart ------------------------------------------------------------------------

    def create_multipart(self, key: str) -> str:
        self.path_for(key)
        upload_id = uuid.uuid4().hex
        folder = self._staging / "uploads" / upload_id
        folder.mkdir(parents=True)
        (folder / "key").write_text(key)
        return upload_id

    def signed_part_urls(self, key: str, upload_id: str, parts: int, expires_in: int) -> builtins.list[str]:
        folder = self._upload_folder(key, upload_id)
        start(folder, check_part_count(parts))
        return [
            self._signer.sign(SignedTarget("PUT", key, upload_id, number), expires_in) for number in range(1, parts + 1)
        ]

    def complete_multipart(self, key: str, upload_id: str, parts: Sequence[tuple[int, str]]) -> StoredObject:
        folder = self._upload_folder(key, upload_id)
        ordered = ordered_parts(key, parts)
        with self._hashers_lock:
            hasher = self._hashers.pop(upload_id, None)
        try:
            fd = os.open(folder / DATA, os.O_RDWR)
        except FileNotFoundError:  # an upload begun by an earlier version: every part is a file of its own
            stored = self._join(key, [self._part_bytes(folder, key, number, etag) for number, etag in ordered])
        else:
            with open(fd, "r+b", buffering=0) as data:
                lock_for_completion(fd, key)
                # Checked under the lock: no part PUT can replace a part any more.
                found = [self._part_bytes(folder, key, number, etag) for number, etag in ordered]
                if _laid_out(found):
                    stored = self._complete_in_place(key, folder / DATA, data, found, hasher)
                else:
                    stored = self._join(key, found)
        remove_tree(folder)
        return stored

    def _complete_in_place(
        self, key: str, path: Path, data: IO[bytes], found: builtins.list[PartBytes], hasher: PrefixHasher | None
    ) -> StoredObject:
        """The parts already sit at their offsets in the data file: copy in the few that do not (re-sent ones),
        hash what the background hasher has not, fsync, and rename the file into place."""
        fd, total = data.fileno(), 0
        for part in found:
            if not part.placed:
                _copy_range(part.path, 0, part.size, fd, total)
            elif (held := os.fstat(fd).st_size - part.offset) < part.size:  # a crash cut the unsynced file short
                held = max(held, 0)
                raise BadPart(f"part {part.number} of {key} holds {held} of its {part.size} bytes: upload it again")
            total += part.size
        os.ftruncate(fd, total)
        digest, hashed = hasher.stop(found) if hasher else (hashlib.sha256(), 0)
        hash_range(fd, hashed, total - hashed, digest)
        os.fsync(fd)
        dest = self.path_for(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, dest)
        return StoredObject(key, total, digest.hexdigest())

    def _join(self, key: str, found: builtins.list[PartBytes]) -> StoredObject:
        """Parts that do not lie in order in one file (an upload begun by an earlier version, part numbers with
        gaps, unequal part sizes): copied one after another into a new file, hashed on the way."""
        with self._writer(key) as writer:
            for part in found:
                with open(part.path, "rb", buffering=0) as source:
                    source.seek(part.offset)
                    left = part.size
                    while left > 0:
                        chunk = source.read(min(CHUNK, left))
                        if not chunk:
                            raise BadPart(f"part {part.number} of {key} is cut short: upload it again")
                        writer.write(chunk)
                        left -= len(chunk)
            writer.commit()
        return StoredObject(key, writer.size, writer.sha256)

    def abort_multipart(self, key: str, upload_id: str) -> None:
        try:
            folder = self._upload_folder(key, upload_id)
            with self._hashers_lock:
                hasher = self._hashers.pop(upload_id, None)
            if hasher:
                hasher.stop([])
            remove_tree(folder)
        except UploadNotFound:
            if self._upload_exists(upload_id):
                raise  # an upload of another key: refuse rather than drop someone else's parts

    # -- writers used by the signed-URL routes --------------------------------------------

    def open_writer(self, key: str) -> ObjectWriter:
        """A streaming writer for a signed PUT of a whole object."""
        dest = self.path_for(key)
        writer = AtomicWriter(self._staging / "tmp", sha256=False)  # the md5 is the ETag, as on S3
        return ObjectWriter(writer, lambda writer: _place_object(writer, dest))

    def open_part_writer(
        self, key: str, upload_id: str, part: int, length: int | None = None
    ) -> ObjectWriter | PlacedPart:
        """A streaming writer for one part of `length` bytes (the Content-Length, when the client sent one).

        The first PUT of a part writes straight into the upload's data file at the part's offset; a part that
        cannot (sent again, sized unlike the others, length unknown) goes to a file of its own whose name
        carries the ETag (a random tag and the size), copied in at completion. Parts are neither hashed nor
        fsynced here: the background hasher does both for the finished prefix, completion the rest.
        """
        folder = self._upload_folder(key, upload_id)
        offset = place(folder, part, length)
        if offset is not None:
            return PlacedPart(folder, part, offset, lambda: self._hash_later(folder, upload_id))
        writer = AtomicWriter(self._staging / "tmp", md5=False, sha256=False, durable=False)
        return ObjectWriter(writer, lambda writer: _place_part(writer, folder, part))

    def _hash_later(self, folder: Path, upload_id: str) -> None:
        with self._hashers_lock:
            hasher = self._hashers.setdefault(upload_id, PrefixHasher(folder))
        self._hashing.submit(hasher.advance)
        self._flushing.submit(flush, folder)

    def path_for(self, key: str) -> Path:
        """The file for `key`, or InvalidKey when the key is unsafe or would leave the root."""
        check_key(key)
        if key.split("/", 1)[0] == STAGING:
            raise InvalidKey(f"object key {key!r} is inside the reserved folder {STAGING}")
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise InvalidKey(f"object key {key!r} resolves outside the object store")
        return path

    # -- helpers --------------------------------------------------------------------------

    def _writer(self, key: str, sha256: bool = True) -> AtomicWriter:
        return AtomicWriter(self._staging / "tmp", self.path_for(key), md5=False, sha256=sha256)

    def _folder_of(self, prefix: str) -> Path:
        parent = prefix.rpartition("/")[0]
        if parent.split("/", 1)[0] == STAGING:
            return self._staging / "absent"  # staging files are never listed
        return self.path_for(parent) if parent else self.root

    def _upload_exists(self, upload_id: str) -> bool:
        return bool(_UPLOAD_ID.match(upload_id)) and (self._staging / "uploads" / upload_id).is_dir()

    def _upload_folder(self, key: str, upload_id: str) -> Path:
        folder = self._staging / "uploads" / upload_id
        if not self._upload_exists(upload_id) or (folder / "key").read_text() != key:
            raise UploadNotFound(f"no multipart upload {upload_id!r} in progress for {key}")
        return folder

    @staticmethod
    def _part_bytes(folder: Path, key: str, number: int, etag: str) -> PartBytes:
        versions = uploaded(folder, number)
        if not versions:
            raise BadPart(f"part {number} of {key} was never uploaded")
        for part in versions:
            if part.etag == bare_etag(etag):
                if not part.placed:
                    _check_part_size(part.path, key, number)
                return part
        actual = versions[-1].etag
        raise BadPart(f'ETag {etag} for part {number} of {key} does not match the uploaded part ("{actual}")')


def _check_part_size(path: Path, key: str, number: int) -> None:
    """The size in the part's name (`<tag>-<size>`) against the file: a crash may have cut an unsynced part."""
    tag, _, size = path.suffix.rpartition("-")
    if not tag or not size.isdigit():
        return  # a part stored by an earlier version, named by its md5 after an fsync
    held = path.stat().st_size
    if held != int(size):
        raise BadPart(f"part {number} of {key} holds {held} of its {size} bytes: upload it again")


def _place_object(writer: AtomicWriter, dest: Path) -> str:
    writer.commit(dest)
    return str(writer.md5)


def _place_part(writer: AtomicWriter, folder: Path, part: int) -> str:
    # S3 clients echo the ETag back unread; an md5 would cost a CPU-second per 2 GB for nothing here.
    etag = f"{secrets.token_hex(8)}-{writer.size}"
    drop_stale(folder, part, keep=writer.commit(folder / f"{part:05d}.{etag}"))
    return etag


def _laid_out(found: builtins.list[PartBytes]) -> bool:
    """Every part that went in place sits where the joined object needs it (parts numbered without gaps)."""
    total = 0
    for part in found:
        if part.placed and part.offset != total:
            return False
        total += part.size
    return True


def _copy_range(source: Path, offset: int, size: int, fd: int, dest_offset: int) -> None:
    """Copy bytes of `source` into the open file at `dest_offset`, in the kernel where it can."""
    with open(source, "rb", buffering=0) as handle:
        end = offset + size
        while offset < end:
            try:
                count = os.copy_file_range(handle.fileno(), fd, end - offset, offset, dest_offset)
            except OSError:
                count = os.pwrite(fd, os.pread(handle.fileno(), min(CHUNK, end - offset), offset), dest_offset)
            if count == 0:
                raise BadPart(f"{source.name} ends before its {size} bytes")
            offset += count
            dest_offset += count
