"""Object storage: `open_store(url, settings)` picks the implementation from the URL's scheme."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlparse

from openesd.errors import ConfigurationError
from openesd.settings import Settings
from openesd.storage._keys import MAX_KEY_LENGTH, MAX_SEGMENT_LENGTH
from openesd.storage.base import ObjectStore, StoredObject
from openesd.storage.local import LocalObjectStore
from openesd.storage.s3 import S3ObjectStore

_REGISTRY: dict[str, Callable[[str, Settings], ObjectStore]] = {
    "file": LocalObjectStore.from_url,
    "s3": S3ObjectStore.from_url,
}


def open_store(url: str, settings: Settings) -> ObjectStore:
    """The object store named by `url` (`file:///abs/dir` or `s3://bucket/prefix`)."""
    scheme = urlparse(url).scheme
    if scheme not in _REGISTRY:
        valid = ", ".join(f"{name}://" for name in _REGISTRY)
        raise ConfigurationError(f"unknown object store URL scheme {scheme!r} in {url!r}; valid: {valid}")
    return _REGISTRY[scheme](url, settings)


__all__ = ["MAX_KEY_LENGTH", "MAX_SEGMENT_LENGTH", "ObjectStore", "StoredObject", "open_store"]
