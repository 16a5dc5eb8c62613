"""The `ObjectStore` role: where model files, datasets, job payloads and results are kept.

Keys are relative posix paths (`Lora/checkpoint/custom/<uuid>/file.safetensors`), the same
layout ESD uses in its S3 bucket (esd-api.md §1.10), whichever implementation holds them.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal, Protocol

SignedMethod = Literal["GET", "PUT"]


@dataclass(frozen=True)
class StoredObject:
    """One stored object; `sha256` is known only where the store hashed the bytes as it wrote them."""

    key: str
    size: int
    sha256: str | None = None

    def put_sha256(self) -> str:
        """The sha256 of a file `put_file` just stored: every store hashes the file as it stores it."""
        if self.sha256 is None:
            raise ValueError(f"the store gave no sha256 for {self.key}")
        return self.sha256


class ObjectStore(Protocol):
    """Objects by key, plus the presigned URLs and multipart uploads that ESD clients rely on."""

    def put_bytes(self, key: str, data: bytes) -> StoredObject:
        """Store `data` under `key` (atomically replacing any object there)."""
        ...

    def put_file(self, key: str, path: Path) -> StoredObject:
        """Store a local file under `key`, streamed rather than read into memory."""
        ...

    def open(self, key: str) -> IO[bytes]:
        """A binary stream of the object, to be closed by the caller (use `with`)."""
        ...

    def get_bytes(self, key: str) -> bytes:
        """The whole object in memory: for small objects such as JSON payloads."""
        ...

    def stat(self, key: str) -> StoredObject | None:
        """The object's key and size, or None when there is no object under `key`."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object; removing a missing object is not an error."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object whose key starts with `prefix` and say how many there were."""
        ...

    def list(self, prefix: str = "") -> list[StoredObject]:
        """The objects whose key starts with `prefix` (plain string prefix, as S3), sorted by key."""
        ...

    def move(self, source: str, dest: str) -> None:
        """Rename an object (checkpoint rename); the source must exist and is gone afterwards."""
        ...

    def uri(self, key: str) -> str:
        """Where a key, a folder prefix or ("") the store itself lives: `s3://bucket/…`, `file:///…`."""
        ...

    def download(self, key: str, dest: Path) -> Path:
        """Copy the object to a local file (written atomically) and return its path."""
        ...

    def signed_url(self, key: str, method: SignedMethod, expires_in: int) -> str:
        """A URL that lets anyone holding it GET or PUT this one key for `expires_in` seconds."""
        ...

    def create_multipart(self, key: str) -> str:
        """Open a multipart upload to `key` and return its upload id."""
        ...

    def signed_part_urls(self, key: str, upload_id: str, parts: int, expires_in: int) -> builtins.list[str]:
        """Signed PUT URLs for parts 1..`parts`; each PUT answers with the part's quoted `ETag`."""
        ...

    def complete_multipart(self, key: str, upload_id: str, parts: Sequence[tuple[int, str]]) -> StoredObject:
        """Join the uploaded parts, given as (part number, ETag), in part-number order."""
        ...

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Drop the upload and its parts; aborting an upload that is already gone is not an error."""
        ...
