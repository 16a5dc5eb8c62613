"""The local store's multipart uploads assembled in place: parts in any order, sent again, cut off, aborted,
and the background hash, always ending in the exact bytes and their sha256."""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from openesd.storage import open_store
from openesd.storage.errors import BadPart, UploadNotFound
from openesd.storage.local import STAGING, LocalObjectStore

KEY = "Stable-diffusion/checkpoint/custom/7e1b/model.safetensors"
PART = 64 * 1024


@pytest.fixture
def store(store_settings, tmp_path, objects_app) -> LocalObjectStore:
    built = open_store((tmp_path / "objects").as_uri(), store_settings)
    objects_app.state.store = built
    return built


def _begin(store: LocalObjectStore, parts: int) -> tuple[str, list[str]]:
    upload_id = store.create_multipart(KEY)
    return upload_id, store.signed_part_urls(KEY, upload_id, parts, 60)


def _put(url: str, body: bytes) -> str:
    response = httpx.put(url, content=body)
    assert response.status_code == 200, response.text
    return response.headers["ETag"]


def _assert_stored(store: LocalObjectStore, stored, whole: bytes) -> None:
    assert (stored.size, stored.sha256) == (len(whole), hashlib.sha256(whole).hexdigest())
    assert store.get_bytes(KEY) == whole
    assert not list((store.root / STAGING / "uploads").iterdir()), "the upload's staging folder is left behind"


def _wait_for(condition, seconds=10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the background hasher did not catch up"
        time.sleep(0.02)


def test_parts_arriving_in_any_order_give_the_exact_bytes(store):
    # The last part first (the part size is not known yet: it waits in a file of its own), then the others
    # backwards, so none lands after the prefix the background hasher holds.
    chunks = [os.urandom(PART) for _ in range(4)] + [os.urandom(1234)]
    upload_id, urls = _begin(store, len(chunks))
    etags = {number: _put(urls[number - 1], chunks[number - 1]) for number in (5, 4, 2, 3, 1)}
    stored = store.complete_multipart(KEY, upload_id, sorted(etags.items(), reverse=True))
    _assert_stored(store, stored, b"".join(chunks))


def test_parts_sent_in_parallel_give_the_exact_bytes(store):
    chunks = [os.urandom(3 * PART) for _ in range(7)] + [os.urandom(PART // 3)]
    upload_id, urls = _begin(store, len(chunks))
    with ThreadPoolExecutor(4) as pool:
        etags = list(pool.map(_put, urls, chunks))
    stored = store.complete_multipart(KEY, upload_id, list(enumerate(etags, start=1)))
    _assert_stored(store, stored, b"".join(chunks))


def test_a_part_sent_again_after_it_was_hashed_replaces_it_in_the_hash(store):
    chunks = [os.urandom(PART) for _ in range(3)]
    upload_id, urls = _begin(store, 3)
    etags = [_put(url, chunk) for url, chunk in zip(urls, chunks)]
    # Let the background hasher take all three, so the new part 2 must rewind it, not extend it.
    _wait_for(lambda: store._hashers[upload_id]._position == 3 * PART)
    chunks[1] = os.urandom(PART)
    etags[1] = _put(urls[1], chunks[1])
    stored = store.complete_multipart(KEY, upload_id, list(enumerate(etags, start=1)))
    _assert_stored(store, stored, b"".join(chunks))


def test_completing_with_the_etag_a_part_had_before_it_was_sent_again_is_refused(store):
    upload_id, urls = _begin(store, 2)
    first = _put(urls[0], b"a" * PART)
    second = _put(urls[0], b"b" * PART)
    last = _put(urls[1], b"tail")
    with pytest.raises(BadPart, match=r"ETag .* for part 1 of .* does not match the uploaded part"):
        store.complete_multipart(KEY, upload_id, [(1, first), (2, last)])
    stored = store.complete_multipart(KEY, upload_id, [(1, second), (2, last)])
    _assert_stored(store, stored, b"b" * PART + b"tail")


def test_a_part_cut_off_mid_body_can_be_sent_again_in_place(store):
    upload_id, urls = _begin(store, 2)
    with pytest.raises(httpx.HTTPError):
        # The client announces 2 parts' worth of bytes and hangs up after half of them.
        httpx.put(urls[0], content=_cut_off(b"x" * PART), headers={"Content-Length": str(2 * PART)}, timeout=5)
    # The server notices the hang-up and frees the part's region for the next PUT of it.
    claim = store.root / STAGING / "uploads" / upload_id / "00001.claim"
    _wait_for(lambda: not claim.exists())
    etags = [_put(urls[0], b"y" * PART), _put(urls[1], b"z")]
    stored = store.complete_multipart(KEY, upload_id, list(enumerate(etags, start=1)))
    _assert_stored(store, stored, b"y" * PART + b"z")


def _cut_off(body: bytes):
    yield body
    raise httpx.WriteError("the client went away")


def test_parts_of_unequal_sizes_are_joined_in_order(store):
    # Part 2 is shorter than part 1: it cannot lie at 2 x part size; completion joins instead.
    chunks = [os.urandom(PART), os.urandom(PART // 2), os.urandom(PART), os.urandom(10)]
    upload_id, urls = _begin(store, len(chunks))
    etags = [_put(url, chunk) for url, chunk in zip(urls, chunks)]
    stored = store.complete_multipart(KEY, upload_id, list(enumerate(etags, start=1)))
    _assert_stored(store, stored, b"".join(chunks))


def test_a_subset_of_parts_with_a_gap_is_joined_in_order(store):
    chunks = [os.urandom(PART) for _ in range(3)]
    upload_id, urls = _begin(store, 3)
    etags = [_put(url, chunk) for url, chunk in zip(urls, chunks)]
    stored = store.complete_multipart(KEY, upload_id, [(1, etags[0]), (3, etags[2])])
    _assert_stored(store, stored, chunks[0] + chunks[2])


def test_abort_drops_the_placed_parts_and_refuses_later_ones(store):
    upload_id, urls = _begin(store, 2)
    etag = _put(urls[0], b"a" * PART)
    store.abort_multipart(KEY, upload_id)
    assert not (store.root / STAGING / "uploads" / upload_id).exists()
    assert httpx.put(urls[1], content=b"late").status_code == 404
    with pytest.raises(UploadNotFound):
        store.complete_multipart(KEY, upload_id, [(1, etag)])
    assert store.stat(KEY) is None


def test_a_part_sent_after_completion_cannot_change_the_stored_object(store):
    upload_id, urls = _begin(store, 2)
    etags = [_put(urls[0], b"a" * PART), _put(urls[1], b"b")]
    store.complete_multipart(KEY, upload_id, list(enumerate(etags, start=1)))
    assert httpx.put(urls[0], content=b"c" * PART).status_code == 404
    assert store.get_bytes(KEY) == b"a" * PART + b"b"


def test_a_part_arriving_while_the_upload_completes_is_refused_at_once(store):
    upload_id, urls = _begin(store, 2)
    data = store.root / STAGING / "uploads" / upload_id / "data"
    with open(data, "rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)  # what completion holds while it hashes, syncs and renames
        started = time.monotonic()
        response = httpx.put(urls[0], content=b"a" * PART, timeout=10)
    assert response.status_code == 400
    assert "is being completed; part 1 came too late" in response.json()["message"]
    assert time.monotonic() - started < 5, "the server waited on the lock"
    etags = [_put(urls[0], b"a" * PART), _put(urls[1], b"b")]  # its region was not spent: the part goes in place
    stored = store.complete_multipart(KEY, upload_id, list(enumerate(etags, start=1)))
    _assert_stored(store, stored, b"a" * PART + b"b")
