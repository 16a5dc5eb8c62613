"""`GET /inference/generate-s3-presigned-url-for-uploading` (esd-legacy-api.md §4.6): a signed PUT URL
for one key of the deployment's own store, never of another bucket."""

from __future__ import annotations

from urllib.parse import urlsplit

from openesd.legacy.responses import fastapi_error
from openesd.settings import Settings
from openesd.storage.base import ObjectStore


def store_bucket(store: ObjectStore) -> str:
    """The bucket name a legacy client sees (`local` for the local store, as the checkpoint service says)."""
    return urlsplit(store.uri("")).netloc or "local"


def presigned_upload_url(store: ObjectStore, settings: Settings, key: str | None, bucket: str | None) -> str:
    if not key:
        raise fastapi_error("Key parameter is required", 400)
    if bucket and bucket != store_bucket(store):
        raise fastapi_error(f"bucket {bucket} is not served", 400)
    if key.startswith("/") or ".." in key:
        raise fastapi_error(f"key {key} is not allowed: it must be a relative path without '..'", 400)
    return store.signed_url(key, "PUT", settings.signed_url_ttl_s)
