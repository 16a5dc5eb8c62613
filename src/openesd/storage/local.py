"""`file:///abs/dir`: objects as files under one root folder, signed URLs served by the API itself.

Every write goes through a temporary file and a rename, so a crash never leaves a half file under
a key; multipart parts wait in a staging folder inside the root until the upload completes.
"""

from __future__ import annotations

import builtins
import os
import re
import secrets
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO
from urllib.parse import urlparse
from urllib.request import url2pathname

from openesd.errors import BadRequest, ConfigurationError
from openesd.settings import Settings
from openesd.storage._files import AtomicWriter, prune_empty_parents, remove_tree, sha256_of
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
        self._upload_folder(key, upload_id)
        check_part_count(parts)
        return [
            self._signer.sign(SignedTarget("PUT", key, upload_id, number), expires_in) for number in range(1, parts + 1)
        ]

    def complete_multipart(self, key: str, upload_id: str, parts: Sequence[tuple[int, str]]) -> StoredObject:
        folder = self._upload_folder(key, upload_id)
        ordered = ordered_parts(key, parts)
        # Check every part before writing anything, so a bad ETag costs no copying.
        files = [self._part_file(folder, key, number, etag) for number, etag in ordered]
        # The kernel joins the parts while a second thread hashes them: the bytes cross Python once.
        with self._writer(key, sha256=False) as writer, ThreadPoolExecutor(1) as hasher:
            digest = hasher.submit(sha256_of, files)
            for path in files:
                with open(path, "rb") as source:
                    writer.copy_from(source)
            sha256 = digest.result()
            writer.commit()
        remove_tree(folder)
        return StoredObject(key, writer.size, sha256)

    def abort_multipart(self, key: str, upload_id: str) -> None:
        try:
            remove_tree(self._upload_folder(key, upload_id))
        except UploadNotFound:
            if self._upload_exists(upload_id):
                raise  # an upload of another key: refuse rather than drop someone else's parts

    # -- writers used by the signed-URL routes --------------------------------------------

    def open_writer(self, key: str) -> ObjectWriter:
        """A streaming writer for a signed PUT of a whole object."""
        dest = self.path_for(key)
        writer = AtomicWriter(self._staging / "tmp", sha256=False)  # the md5 is the ETag, as on S3
        return ObjectWriter(writer, lambda writer: _place_object(writer, dest))

    def open_part_writer(self, key: str, upload_id: str, part: int) -> ObjectWriter:
        """A streaming writer for one part; its file name carries the ETag (a random tag and the size).

        A part is neither hashed nor fsynced: completion hashes and fsyncs the joined object once, and
        the size in the ETag catches a part that a crash cut short before then.
        """
        folder = self._upload_folder(key, upload_id)
        writer = AtomicWriter(self._staging / "tmp", md5=False, sha256=False, durable=False)
        return ObjectWriter(writer, lambda writer: _place_part(writer, folder, part))

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
    def _part_file(folder: Path, key: str, number: int, etag: str) -> Path:
        uploaded = sorted(folder.glob(f"{number:05d}.*"))
        if not uploaded:
            raise BadPart(f"part {number} of {key} was never uploaded")
        for path in uploaded:
            if path.suffix[1:] == bare_etag(etag):
                _check_part_size(path, key, number)
                return path
        actual = uploaded[-1].suffix[1:]
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
    path = writer.commit(folder / f"{part:05d}.{etag}")
    for stale in folder.glob(f"{part:05d}.*"):
        if stale != path:  # a part uploaded again replaces the earlier bytes, as on S3
            stale.unlink(missing_ok=True)
    return etag
