"""`open_store` picks the implementation from the URL scheme and explains a wrong URL."""

from __future__ import annotations

import pytest

from openesd.errors import ConfigurationError
from openesd.storage import open_store
from openesd.storage.local import LocalObjectStore


def test_the_default_url_is_a_local_store_in_the_data_dir(settings_factory, tmp_path):
    settings = settings_factory()
    store = open_store(settings.resolved_object_store_url, settings)
    assert isinstance(store, LocalObjectStore)
    store.put_bytes("a/b.txt", b"x")
    assert (tmp_path / "objects" / "a" / "b.txt").read_bytes() == b"x"


def test_an_unknown_scheme_lists_the_valid_ones(settings_factory):
    with pytest.raises(ConfigurationError) as raised:
        open_store("gs://bucket/models", settings_factory())
    assert raised.value.message == "unknown object store URL scheme 'gs' in 'gs://bucket/models'; valid: file://, s3://"


@pytest.mark.parametrize("url", ["file://relative/dir", "file:relative"])
def test_a_file_url_must_be_absolute(settings_factory, url):
    with pytest.raises(ConfigurationError, match="must be file:///absolute/folder"):
        open_store(url, settings_factory())


def test_an_s3_url_must_name_a_bucket(settings_factory):
    with pytest.raises(ConfigurationError, match="names no bucket"):
        open_store("s3:///models", settings_factory())
