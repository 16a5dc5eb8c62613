"""`s3://bucket/prefix`: objects in S3 or any S3-compatible server (MinIO, moto), through boto3.

boto3 is imported only here, inside functions, so the API starts without it; its errors are
turned into storage errors at this boundary with the table in `errors.py`.
"""

from __future__ import annotations

import builtins
import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, urlparse

from openesd.errors import BadRequest, ConfigurationError
from openesd.settings import Settings
from openesd.storage._files import CHUNK
from openesd.storage._keys import check_key, check_prefix
from openesd.storage._parts import bare_etag, check_part_count, ordered_parts
from openesd.storage._serving import serving_for
from openesd.storage.base import SignedMethod, StoredObject
from openesd.storage.errors import (
    S3_ERRORS,
    BadPart,
    ObjectNotFound,
    StorageError,
    StorageUnavailable,
    UploadNotFound,
)

_PRESIGN_OPERATION = {"GET": "get_object", "PUT": "put_object"}
_DELETE_BATCH = 1000  # S3's DeleteObjects limit


class S3ObjectStore:
    """Objects under `prefix` in one bucket; keys in the API are relative to the prefix."""

    def __init__(self, client: Any, bucket: str, prefix: str = ""):
        self._client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    @classmethod
    def from_url(cls, url: str, settings: Settings) -> S3ObjectStore:
        """`s3://bucket/prefix[?create_bucket=true]`; the flag (tests) creates a missing bucket."""
        parsed = urlparse(url)
        if not parsed.netloc:
            raise ConfigurationError(f"object store URL {url!r} names no bucket: use s3://bucket/prefix")
        store = cls(make_client(settings), parsed.netloc, parsed.path)
        flag = parse_qs(parsed.query).get("create_bucket", ["false"])[0].lower()
        if flag in ("1", "true", "yes"):
            store.ensure_bucket(settings.s3_region)
        return store

    def ensure_bucket(self, region: str) -> None:
        with _s3_errors(self.bucket):
            if self.bucket in {item["Name"] for item in self._client.list_buckets()["Buckets"]}:
                return
            # us-east-1 is S3's default location and refuses to be named as a constraint.
            if region == "us-east-1":
                self._client.create_bucket(Bucket=self.bucket)
            else:
                location = {"LocationConstraint": region}
                self._client.create_bucket(Bucket=self.bucket, CreateBucketConfiguration=location)

    # -- objects --------------------------------------------------------------------------

    def put_bytes(self, key: str, data: bytes) -> StoredObject:
        with _s3_errors(self.bucket, key):
            self._client.put_object(Bucket=self.bucket, Key=self._full(key), Body=data)
        return StoredObject(key, len(data), hashlib.sha256(data).hexdigest())

    def put_file(self, key: str, path: Path) -> StoredObject:
        # upload_file streams in parallel parts; the sha256 is a cheap local read beside it.
        sha256, size = _file_digest(Path(path))
        with _s3_errors(self.bucket, key):
            self._client.upload_file(str(path), self.bucket, self._full(key))
        return StoredObject(key, size, sha256)

    def open(self, key: str) -> IO[bytes]:
        with _s3_errors(self.bucket, key):
            body: IO[bytes] = self._client.get_object(Bucket=self.bucket, Key=self._full(key))["Body"]
            return body

    def get_bytes(self, key: str) -> bytes:
        with self.open(key) as body, _s3_errors(self.bucket, key):
            return body.read()

    def stat(self, key: str) -> StoredObject | None:
        try:
            with _s3_errors(self.bucket, key):
                head = self._client.head_object(Bucket=self.bucket, Key=self._full(key))
        except ObjectNotFound:
            return None
        return StoredObject(key, head["ContentLength"])

    def delete(self, key: str) -> None:
        with _s3_errors(self.bucket, key):
            self._client.delete_object(Bucket=self.bucket, Key=self._full(key))

    def delete_prefix(self, prefix: str) -> int:
        keys = [self._full(item.key) for item in self.list(prefix)]
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = [{"Key": key} for key in keys[start : start + _DELETE_BATCH]]
            with _s3_errors(self.bucket, prefix):
                self._client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        return len(keys)

    def list(self, prefix: str = "") -> list[StoredObject]:
        check_prefix(prefix)
        found = []
        paginator = self._client.get_paginator("list_objects_v2")
        with _s3_errors(self.bucket, prefix):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._full_prefix(prefix)):
                for item in page.get("Contents", []):
                    found.append(StoredObject(self._relative(item["Key"]), item["Size"]))
        return sorted(found, key=lambda item: item.key)

    def move(self, source: str, dest: str) -> None:
        # The managed copy switches to a multipart copy past 5 GiB, where CopyObject stops.
        with _s3_errors(self.bucket, source):
            origin = {"Bucket": self.bucket, "Key": self._full(source)}
            self._client.copy(origin, self.bucket, self._full(dest))
        self.delete(source)

    def uri(self, key: str) -> str:
        check_prefix(key)
        path = "/".join(part for part in (self.prefix, key) if part)
        return f"s3://{self.bucket}/{path}" if path else f"s3://{self.bucket}"

    def download(self, key: str, dest: Path) -> Path:
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        # boto3 writes to a temporary name and renames it into place when the transfer is done.
        with _s3_errors(self.bucket, key):
            self._client.download_file(self.bucket, self._full(key), str(dest))
        return dest

    # -- signed URLs ----------------------------------------------------------------------

    def signed_url(self, key: str, method: SignedMethod, expires_in: int) -> str:
        if method not in _PRESIGN_OPERATION:
            raise BadRequest(f"signed URLs are for GET or PUT, not {method!r}")
        params = {"Bucket": self.bucket, "Key": self._full(key)}
        if method == "GET":
            # The stored Content-Type is whatever the uploader sent: S3 is told what to serve instead.
            serving = serving_for(key)
            params |= {"ResponseContentType": serving.content_type, "ResponseContentDisposition": serving.disposition}
        with _s3_errors(self.bucket, key):
            operation = _PRESIGN_OPERATION[method]
            url: str = self._client.generate_presigned_url(operation, Params=params, ExpiresIn=expires_in)
            return url

    # -- multipart ------------------------------------------------------------------------

    def create_multipart(self, key: str) -> str:
        with _s3_errors(self.bucket, key):
            upload_id: str = self._client.create_multipart_upload(Bucket=self.bucket, Key=self._full(key))["UploadId"]
            return upload_id

    def signed_part_urls(self, key: str, upload_id: str, parts: int, expires_in: int) -> builtins.list[str]:
        check_part_count(parts)
        base = {"Bucket": self.bucket, "Key": self._full(key), "UploadId": upload_id}
        with _s3_errors(self.bucket, key):
            return [
                self._client.generate_presigned_url(
                    "upload_part", Params=base | {"PartNumber": number}, ExpiresIn=expires_in
                )
                for number in range(1, parts + 1)
            ]

    def complete_multipart(self, key: str, upload_id: str, parts: Sequence[tuple[int, str]]) -> StoredObject:
        ordered = ordered_parts(key, parts)
        # S3 answers a bad part with a bare "InvalidPart"; checking first lets the error name it.
        self._check_parts(key, upload_id, ordered)
        body = {"Parts": [{"PartNumber": number, "ETag": f'"{bare_etag(etag)}"'} for number, etag in ordered]}
        with _s3_errors(self.bucket, key):
            self._client.complete_multipart_upload(
                Bucket=self.bucket, Key=self._full(key), UploadId=upload_id, MultipartUpload=body
            )
        stored = self.stat(key)
        if stored is None:
            raise StorageError(f"S3 completed the upload of {key} but the object is not there")
        return stored  # S3 does not hand back a sha256 of the joined object

    def abort_multipart(self, key: str, upload_id: str) -> None:
        try:
            with _s3_errors(self.bucket, key):
                self._client.abort_multipart_upload(Bucket=self.bucket, Key=self._full(key), UploadId=upload_id)
        except UploadNotFound:
            pass  # already completed or aborted: aborting is idempotent

    # -- helpers --------------------------------------------------------------------------

    def _check_parts(self, key: str, upload_id: str, ordered: builtins.list[tuple[int, str]]) -> None:
        uploaded = self._uploaded_parts(key, upload_id)
        for number, etag in ordered:
            if number not in uploaded:
                raise BadPart(f"part {number} of {key} was never uploaded")
            if uploaded[number] != bare_etag(etag):
                raise BadPart(
                    f'ETag {etag} for part {number} of {key} does not match the uploaded part ("{uploaded[number]}")'
                )

    def _uploaded_parts(self, key: str, upload_id: str) -> dict[int, str]:
        paginator = self._client.get_paginator("list_parts")
        uploaded: dict[int, str] = {}
        with _s3_errors(self.bucket, key):
            for page in paginator.paginate(Bucket=self.bucket, Key=self._full(key), UploadId=upload_id):
                uploaded |= {part["PartNumber"]: bare_etag(part["ETag"]) for part in page.get("Parts", [])}
        return uploaded

    def _full(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _full_prefix(self, prefix: str) -> str:
        return f"{self.prefix}/{prefix}" if self.prefix else prefix

    def _relative(self, full_key: str) -> str:
        return full_key[len(self.prefix) + 1 :] if self.prefix else full_key


def make_client(settings: Settings) -> Any:
    """A boto3 S3 client from the settings; path-style addressing when an endpoint URL is set."""
    import boto3
    from botocore.config import Config

    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"} if settings.s3_endpoint_url else {},
        retries={"max_attempts": 3, "mode": "standard"},
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=settings.s3_secret_access_key,
        region_name=settings.s3_region,
        config=config,
    )


@contextmanager
def _s3_errors(bucket: str, key: str = "") -> Iterator[None]:
    """Translate botocore errors into storage errors (the table in `errors.py`)."""
    from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, EndpointConnectionError

    try:
        yield
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        cls, template = S3_ERRORS.get(code, (StorageError, "S3 request for {key} failed with {code}"))
        raise cls(template.format(key=key or bucket, bucket=bucket, code=code)) from error
    except (EndpointConnectionError, ConnectionError) as error:
        raise StorageUnavailable(f"cannot reach the S3 store for bucket {bucket}: {error}") from error
    except BotoCoreError as error:
        raise StorageError(f"S3 request for {key or bucket} failed: {error}") from error


def _file_digest(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
