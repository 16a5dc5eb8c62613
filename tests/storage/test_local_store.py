"""What only the local store does: its own signed URLs, key containment, the signing key file."""

from __future__ import annotations

import hashlib
import os
import stat
import time
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from openesd.storage import open_store
from openesd.storage.errors import BadPart, InvalidKey
from openesd.storage.local import STAGING, LocalObjectStore

KEY = "Stable-diffusion/checkpoint/custom/5d3a/v1-5-pruned-emaonly.safetensors"


@pytest.fixture
def store(store_settings, tmp_path, objects_app) -> LocalObjectStore:
    built = open_store((tmp_path / "objects").as_uri(), store_settings)
    objects_app.state.store = built
    return built


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()} | changes
    return urlunsplit(parts._replace(query=urlencode(query)))


def _with_path(url: str, path: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=path))


def test_a_tampered_signature_is_refused(store):
    store.put_bytes(KEY, b"weights")
    url = store.signed_url(KEY, "GET", 60)
    signature = parse_qs(urlsplit(url).query)["signature"][0]
    response = httpx.get(_with_query(url, signature=signature[:-1] + ("0" if signature[-1] != "0" else "1")))
    assert response.status_code == 403
    assert "altered" in response.json()["message"]


def test_a_lengthened_expiry_is_refused(store):
    store.put_bytes(KEY, b"weights")
    url = store.signed_url(KEY, "GET", 60)
    response = httpx.get(_with_query(url, expires=str(int(time.time()) + 10**6)))
    assert response.status_code == 403
    assert "altered" in response.json()["message"]


def test_a_get_url_cannot_be_used_to_put(store):
    url = store.signed_url(KEY, "GET", 60)
    response = httpx.put(url, content=b"overwrite")
    assert response.status_code == 403
    assert response.json() == {"message": "this URL was signed for GET, not PUT"}
    assert store.stat(KEY) is None


def test_a_url_for_one_key_cannot_be_used_for_another(store):
    store.put_bytes("secret/other.safetensors", b"not yours")
    url = store.signed_url(KEY, "GET", 60)
    response = httpx.get(_with_path(url, "/objects/secret/other.safetensors"))
    assert response.status_code == 403
    assert response.json()["message"] == "this URL was signed for another object, not secret/other.safetensors"


def test_an_unsigned_request_is_refused(store, objects_server):
    store.put_bytes(KEY, b"weights")
    response = httpx.get(f"{objects_server}/objects/{KEY}")
    assert response.status_code == 403
    assert "not signed" in response.json()["message"]


@pytest.mark.parametrize("path", ["/objects/a/%2e%2e/%2e%2e/etc/passwd", "/objects//etc/passwd"])
def test_keys_outside_the_store_are_refused_with_403(store, path):
    url = store.signed_url("a/b", "GET", 60)
    response = httpx.get(_with_path(url, path))
    assert response.status_code == 403
    assert "etc/passwd" in response.json()["message"]


def test_a_symlink_cannot_lead_a_key_outside_the_root(store, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_text("root:x:0:0")
    (store.root / "escape").symlink_to(outside)
    with pytest.raises(InvalidKey, match="outside the object store"):
        store.get_bytes("escape/passwd")


def test_the_staging_folder_is_reserved_and_never_listed(store):
    with pytest.raises(InvalidKey, match="reserved"):
        store.put_bytes(f"{STAGING}/tmp/x", b"x")
    upload_id = store.create_multipart(KEY)
    httpx.put(store.signed_part_urls(KEY, upload_id, 1, 60)[0], content=b"part").raise_for_status()
    assert store.list() == []


def test_the_signing_key_is_private_and_survives_a_restart(store, store_settings, tmp_path):
    key_file = store_settings.data_dir / "signing.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    store.put_bytes(KEY, b"weights")
    url = store.signed_url(KEY, "GET", 60)
    restarted = open_store((tmp_path / "objects").as_uri(), store_settings)
    assert restarted.verify("GET", KEY, {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()})
    assert httpx.get(url).content == b"weights"


def test_a_url_signed_by_another_deployment_is_refused(store, settings_factory, objects_app, tmp_path):
    other_settings = settings_factory(data_dir=tmp_path / "other", public_url=store._signer._base_url)
    other = open_store((tmp_path / "objects").as_uri(), other_settings)
    store.put_bytes(KEY, b"weights")
    response = httpx.get(other.signed_url(KEY, "GET", 60))
    assert response.status_code == 403


def test_a_part_url_cannot_be_used_for_another_part(store):
    upload_id = store.create_multipart(KEY)
    url = store.signed_part_urls(KEY, upload_id, 2, 60)[0]
    response = httpx.put(_with_query(url, part="2"), content=b"x")
    assert response.status_code == 403
    assert "altered" in response.json()["message"]


def test_a_part_uploaded_again_replaces_the_first(store):
    upload_id = store.create_multipart(KEY)
    url = store.signed_part_urls(KEY, upload_id, 1, 60)[0]
    first = httpx.put(url, content=b"first").headers["ETag"]
    second = httpx.put(url, content=b"second").headers["ETag"]
    with pytest.raises(BadPart, match="part 1"):
        store.complete_multipart(KEY, upload_id, [(1, first)])
    stored = store.complete_multipart(KEY, upload_id, [(1, second)])
    assert stored.sha256 == hashlib.sha256(b"second").hexdigest()
    assert store.get_bytes(KEY) == b"second"


def test_parts_larger_than_one_write_batch_join_to_the_exact_bytes(store):
    # 9 MiB + 3 crosses the 8 MiB writev batch inside the PUT, and the join runs in the kernel.
    chunks = [os.urandom(9 * 1024 * 1024 + 3), os.urandom(5)]
    upload_id = store.create_multipart(KEY)
    urls = store.signed_part_urls(KEY, upload_id, 2, 60)
    etags = [httpx.put(url, content=chunk).headers["ETag"] for url, chunk in zip(urls, chunks)]
    stored = store.complete_multipart(KEY, upload_id, list(enumerate(etags, start=1)))
    whole = b"".join(chunks)
    assert (stored.size, stored.sha256) == (len(whole), hashlib.sha256(whole).hexdigest())
    assert store.get_bytes(KEY) == whole


def test_a_part_cut_short_after_its_put_is_refused_by_name(store):
    # Parts are not fsynced when their PUT answers: a crash may leave a part shorter than the PUT sent.
    upload_id = store.create_multipart(KEY)
    url = store.signed_part_urls(KEY, upload_id, 1, 60)[0]
    etag = httpx.put(url, content=b"x" * 1000).headers["ETag"]
    (store.root / STAGING / "uploads" / upload_id / "data").write_bytes(b"x" * 10)  # the part went in place
    with pytest.raises(BadPart, match="part 1 of .* holds 10 of its 1000 bytes: upload it again"):
        store.complete_multipart(KEY, upload_id, [(1, etag)])
    assert store.stat(KEY) is None


def _wait_for(condition, seconds=5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_a_cut_off_upload_leaves_no_object_and_no_temp_file(store):
    store.put_bytes(KEY, b"the old version")
    temp = store.root / STAGING / "tmp"
    url = store.signed_url(KEY, "PUT", 60)

    def body():
        yield b"x" * (1024 * 1024)
        # Drop the connection only once the server is writing the new bytes to a temp file.
        assert _wait_for(lambda: any(temp.iterdir()))
        raise ConnectionError("client went away")

    with pytest.raises(ConnectionError):
        httpx.put(url, content=body(), headers={"Content-Length": str(10 * 1024 * 1024)})
    assert _wait_for(lambda: not any(temp.iterdir()))
    assert store.get_bytes(KEY) == b"the old version"


def test_get_answers_with_length_and_media_type(store):
    store.put_bytes("out/job/result/image_0.png", b"\x89PNG....")
    response = httpx.get(store.signed_url("out/job/result/image_0.png", "GET", 60))
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-length"] == "8"


def test_the_routes_refuse_when_the_store_is_not_local(store, objects_app):
    url = store.signed_url(KEY, "GET", 60)
    objects_app.state.store = object()
    response = httpx.get(url)
    assert response.status_code == 404
    assert "S3" in response.json()["message"]
