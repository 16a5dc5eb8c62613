"""The one contract every ObjectStore keeps, run against the local store and S3 (moto)."""

from __future__ import annotations

import hashlib
import os
import time

import httpx
import pytest

from openesd.storage.errors import BadPart, InvalidKey, ObjectNotFound, UploadNotFound

KEY = "Lora/checkpoint/custom/0b6c1b3e-5d0f-4b7a-9a51-3f1de2b1c001/cartoony.safetensors"


def test_put_bytes_then_get_returns_the_bytes_size_and_sha256(object_store):
    data = os.urandom(1000)
    stored = object_store.put_bytes(KEY, data)
    assert (stored.key, stored.size, stored.sha256) == (KEY, 1000, hashlib.sha256(data).hexdigest())
    assert object_store.get_bytes(KEY) == data
    assert object_store.stat(KEY).size == 1000


def test_put_replaces_an_existing_object(object_store):
    object_store.put_bytes("a/b.json", b'{"old": 1}')
    object_store.put_bytes("a/b.json", b"{}")
    assert object_store.get_bytes("a/b.json") == b"{}"


def test_missing_object_is_none_on_stat_and_404_on_read(object_store):
    assert object_store.stat("out/nothing.png") is None
    with pytest.raises(ObjectNotFound) as raised:
        object_store.get_bytes("out/nothing.png")
    assert raised.value.status_code == 404
    assert "out/nothing.png" in raised.value.message


def test_open_streams_the_object_in_chunks(object_store):
    data = os.urandom(3 * 65536 + 7)
    object_store.put_bytes("dataset/cats/1.png", data)
    with object_store.open("dataset/cats/1.png") as stream:
        chunks = iter(lambda: stream.read(65536), b"")
        assert b"".join(chunks) == data


def test_list_uses_plain_string_prefixes_and_sorts_by_key(object_store):
    for key in ("a/b/2.png", "a/b/1.png", "a/bc/3.png", "z.txt"):
        object_store.put_bytes(key, key.encode())
    assert [item.key for item in object_store.list("a/b/")] == ["a/b/1.png", "a/b/2.png"]
    assert [item.key for item in object_store.list("a/b")] == ["a/b/1.png", "a/b/2.png", "a/bc/3.png"]
    assert [item.key for item in object_store.list()] == ["a/b/1.png", "a/b/2.png", "a/bc/3.png", "z.txt"]
    assert [item.size for item in object_store.list("z")] == [5]
    assert object_store.list("nothing/") == []


def test_delete_removes_the_object_and_deleting_again_is_fine(object_store):
    object_store.put_bytes(KEY, b"x")
    object_store.delete(KEY)
    object_store.delete(KEY)
    assert object_store.stat(KEY) is None
    assert object_store.list() == []


def test_delete_prefix_removes_only_that_prefix_and_counts(object_store):
    for key in (
        "kohya/train/t1/output/a.safetensors",
        "kohya/train/t1/input/c.toml",
        "kohya/train/t10/output/b.safetensors",
    ):
        object_store.put_bytes(key, b"1")
    assert object_store.delete_prefix("kohya/train/t1/") == 2
    assert [item.key for item in object_store.list()] == ["kohya/train/t10/output/b.safetensors"]
    assert object_store.delete_prefix("kohya/train/t1/") == 0


def test_move_renames_an_object(object_store):
    folder = "Lora/checkpoint/custom/0b6c"
    object_store.put_bytes(f"{folder}/cartoony.safetensors", b"lora")
    object_store.move(f"{folder}/cartoony.safetensors", f"{folder}/cartoony")
    assert [item.key for item in object_store.list(folder)] == [f"{folder}/cartoony"]
    assert object_store.get_bytes(f"{folder}/cartoony") == b"lora"
    with pytest.raises(ObjectNotFound):
        object_store.move(f"{folder}/cartoony.safetensors", f"{folder}/again")


def test_uri_names_the_store_folder_and_key(object_store):
    root = object_store.uri("")
    assert root.startswith(("s3://", "file:///"))
    assert object_store.uri("Lora/checkpoint/custom/0b6c") == f"{root}/Lora/checkpoint/custom/0b6c"
    with pytest.raises(InvalidKey):
        object_store.uri("../outside")


def test_put_file_streams_a_file_and_download_writes_it_back(object_store, tmp_path):
    source = tmp_path / "model.safetensors"
    data = os.urandom(2 * 1024 * 1024 + 123)
    source.write_bytes(data)
    stored = object_store.put_file(KEY, source)
    assert (stored.size, stored.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    dest = object_store.download(KEY, tmp_path / "cache" / "model.safetensors")
    assert dest.read_bytes() == data
    assert sorted(path.name for path in dest.parent.iterdir()) == ["model.safetensors"]


@pytest.mark.parametrize(
    "key", ["../etc/passwd", "/etc/passwd", "a/../../b", "a\\b", "a\x00b", "a/./b", "a//b", "folder/", ""]
)
def test_unsafe_keys_are_refused_with_400(object_store, key):
    with pytest.raises(InvalidKey) as raised:
        object_store.put_bytes(key, b"x")
    assert raised.value.status_code == 400


def test_signed_put_then_signed_get_over_http(object_store):
    data = os.urandom(300_000)
    put_url = object_store.signed_url("txt2img/infer_v2/job-1/api_param.json", "PUT", 3600)
    httpx.put(put_url, content=data).raise_for_status()
    get_url = object_store.signed_url("txt2img/infer_v2/job-1/api_param.json", "GET", 3600)
    response = httpx.get(get_url)
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-length"] == str(len(data))


def test_signed_get_of_a_missing_object_is_404(object_store):
    response = httpx.get(object_store.signed_url("out/missing/result/image.png", "GET", 60))
    if object_store.uri("").startswith("s3://"):
        # GET URLs carry response-content-type/-disposition (storage/_serving.py); for a missing key moto
        # answers them with SignatureDoesNotMatch (403) where S3 answers 404, or 403 without ListBucket.
        assert response.status_code in (403, 404)
    else:
        assert response.status_code == 404


def _upload_parts(object_store, key, chunks, order):
    upload_id = object_store.create_multipart(key)
    urls = object_store.signed_part_urls(key, upload_id, len(chunks), 3600)
    assert len(urls) == len(chunks)
    etags = {}
    for number in order:
        response = httpx.put(urls[number - 1], content=chunks[number - 1])
        response.raise_for_status()
        etags[number] = response.headers["ETag"]
    return upload_id, etags


def test_multipart_upload_through_signed_part_urls(object_store):
    chunks = [os.urandom(70_000), os.urandom(70_000), os.urandom(1234)]
    upload_id, etags = _upload_parts(object_store, KEY, chunks, order=[3, 1, 2])
    # Quoted, one per part; S3's is the part's md5, the local store's an opaque tag (clients echo it unread).
    assert len(set(etags.values())) == 3 and all(tag.startswith('"') and tag.endswith('"') for tag in etags.values())
    if not object_store.uri(KEY).startswith("file:"):
        for number, chunk in enumerate(chunks, start=1):
            assert etags[number] == f'"{hashlib.md5(chunk).hexdigest()}"'
    # Clients send {"ETag", "PartNumber"} in any order; the store sorts by part number.
    stored = object_store.complete_multipart(KEY, upload_id, [(2, etags[2]), (3, etags[3]), (1, etags[1])])
    whole = b"".join(chunks)
    assert stored.key == KEY and stored.size == len(whole)
    assert stored.sha256 in (None, hashlib.sha256(whole).hexdigest())
    assert object_store.get_bytes(KEY) == whole


def test_completing_with_a_wrong_etag_names_the_part(object_store):
    chunks = [b"a" * 1000, b"b" * 1000, b"c" * 10]
    upload_id, etags = _upload_parts(object_store, KEY, chunks, order=[1, 2, 3])
    wrong = f'"{hashlib.md5(b"other").hexdigest()}"'
    with pytest.raises(BadPart) as raised:
        object_store.complete_multipart(KEY, upload_id, [(1, etags[1]), (2, wrong), (3, etags[3])])
    assert raised.value.status_code == 400
    assert "part 2" in raised.value.message and wrong in raised.value.message
    assert object_store.stat(KEY) is None
    # The upload is still open: the right ETags complete it.
    object_store.complete_multipart(KEY, upload_id, [(1, etags[1]), (2, etags[2]), (3, etags[3])])
    assert object_store.get_bytes(KEY) == b"".join(chunks)


def test_completing_with_a_part_never_uploaded_names_it(object_store):
    upload_id, etags = _upload_parts(object_store, KEY, [b"a" * 100, b"b" * 100], order=[1])
    with pytest.raises(BadPart, match="part 2 .* never uploaded"):
        object_store.complete_multipart(KEY, upload_id, [(1, etags[1]), (2, etags[1])])


def test_completing_with_no_parts_or_a_duplicate_part_is_400(object_store):
    upload_id, etags = _upload_parts(object_store, KEY, [b"a" * 100], order=[1])
    with pytest.raises(BadPart, match="no parts"):
        object_store.complete_multipart(KEY, upload_id, [])
    with pytest.raises(BadPart, match="part 1 .* twice"):
        object_store.complete_multipart(KEY, upload_id, [(1, etags[1]), (1, etags[1])])


def test_abort_drops_the_upload_and_its_parts(object_store):
    upload_id, etags = _upload_parts(object_store, KEY, [b"a" * 100, b"b" * 100], order=[1, 2])
    object_store.abort_multipart(KEY, upload_id)
    object_store.abort_multipart(KEY, upload_id)  # idempotent
    with pytest.raises(UploadNotFound):
        object_store.complete_multipart(KEY, upload_id, [(1, etags[1]), (2, etags[2])])
    assert object_store.stat(KEY) is None
    assert object_store.list() == []


def test_a_part_url_of_an_aborted_upload_is_refused(object_store):
    upload_id = object_store.create_multipart(KEY)
    url = object_store.signed_part_urls(KEY, upload_id, 1, 3600)[0]
    object_store.abort_multipart(KEY, upload_id)
    # S3 and the local store answer 404 NoSuchUpload; moto answers 500, so only refusal is common.
    assert not httpx.put(url, content=b"late").is_success
    assert object_store.stat(KEY) is None


def test_part_counts_outside_1_to_10000_are_refused(object_store):
    upload_id = object_store.create_multipart(KEY)
    with pytest.raises(BadPart, match="1 to 10000 parts"):
        object_store.signed_part_urls(KEY, upload_id, 0, 3600)


def test_an_expired_url_is_refused(object_store, request):
    if request.node.callspec.params["object_store"] == "s3":
        pytest.skip("moto does not enforce X-Amz-Expires (S3 and MinIO do); see test_s3_store")
    object_store.put_bytes("out/j/result/image.png", b"png")
    url = object_store.signed_url("out/j/result/image.png", "GET", 1)
    time.sleep(2.05)
    response = httpx.get(url)
    assert response.status_code == 403
    assert "expired" in response.json()["message"]
