"""What only the S3 store does: presigned URLs S3 checks itself, the bucket prefix, error translation."""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest

from openesd.storage import open_store
from openesd.storage.errors import StorageError, StorageUnavailable
from openesd.storage.s3 import make_client

pytestmark = pytest.mark.s3


@pytest.fixture
def bucket() -> str:
    return f"test-{uuid.uuid4().hex[:16]}"


@pytest.fixture
def store(s3_settings, bucket):
    return open_store(f"s3://{bucket}/team-a/objects?create_bucket=true", s3_settings)


def test_presigned_urls_are_path_style_and_carry_their_lifetime(store, s3_endpoint, bucket):
    url = store.signed_url("dataset/cats/1.png", "PUT", 7 * 24 * 3600)
    assert url.startswith(f"{s3_endpoint}/{bucket}/team-a/objects/dataset/cats/1.png?")
    query = parse_qs(urlsplit(url).query)
    # Expiry is enforced by S3 itself (moto does not check it), from these signed parameters.
    assert query["X-Amz-Expires"] == [str(7 * 24 * 3600)]
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]


def test_keys_live_under_the_url_prefix_and_list_without_it(store, s3_settings, bucket):
    store.put_bytes("template/kohya_config_cloud.toml", b"[training]")
    client = make_client(s3_settings)
    listed = client.list_objects_v2(Bucket=bucket)["Contents"]
    assert [item["Key"] for item in listed] == ["team-a/objects/template/kohya_config_cloud.toml"]
    assert [item.key for item in store.list("template/")] == ["template/kohya_config_cloud.toml"]


def test_a_missing_bucket_is_reported_by_name_without_the_create_flag(s3_settings):
    store = open_store("s3://no-such-bucket-here/x", s3_settings)
    with pytest.raises(StorageError, match="bucket no-such-bucket-here does not exist"):
        store.put_bytes("a.txt", b"x")


def test_an_unreachable_endpoint_is_503_naming_the_bucket(settings_factory):
    with socket.socket() as sock:  # a port nobody listens on once this block closes it
        sock.bind(("127.0.0.1", 0))
        free_port = sock.getsockname()[1]
    settings = settings_factory(
        s3_endpoint_url=f"http://127.0.0.1:{free_port}", s3_access_key_id="x", s3_secret_access_key="x"
    )
    store = open_store("s3://offline-bucket", settings)
    with pytest.raises(StorageUnavailable) as raised:
        store.stat("a.txt")
    assert raised.value.status_code == 503
    assert "offline-bucket" in raised.value.message


def test_importing_the_stores_does_not_import_boto3():
    code = "import sys, openesd.storage, openesd.api.objects; print('boto3' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
