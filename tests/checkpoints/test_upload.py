"""Uploading model files as ESD clients do: multipart through signed URLs, then completion (§6.2, §6.4)."""

from __future__ import annotations

import os

import pytest

from tests.checkpoints.conftest import get_url, put_part, sha256, upload_file
from tests.support.model_files import model_file_bytes

BIG = model_file_bytes("lora", padding=31 * 1024 * 1024 + 12345, salt="big")


def listed(esd, **params):
    response = esd.get("/prod/checkpoints", user="api", params=params)
    assert response.status_code == 200, response.json()
    return response.json()["data"]


@pytest.fixture(params=["local", "s3"])
def store_esd(request, make_client):
    if request.param == "local":
        return make_client()
    endpoint = request.getfixturevalue("s3_endpoint")
    return make_client(
        object_store_url="s3://openesd-test/models?create_bucket=true",
        s3_endpoint_url=endpoint,
        s3_access_key_id="testing",
        s3_secret_access_key="testing",
    )


def test_a_31_mib_file_in_four_parts_comes_back_byte_for_byte(store_esd):
    esd = store_esd
    checkpoint = upload_file(esd, "big.safetensors", BIG, parts=4)
    assert checkpoint["status"] == "Active"
    item = listed(esd)["checkpoints"][0]
    assert item["name"] == ["big.safetensors"] and item["status"] == "Active"
    assert item["hash"] == sha256(BIG) and item["short_hash"] == sha256(BIG)[:10]
    store = esd.http.app.state.store
    key = f"Lora/checkpoint/custom/{checkpoint['id']}/big.safetensors"
    downloaded = get_url(esd, store.signed_url(key, "GET", 60))
    assert downloaded.status_code == 200
    assert sha256(downloaded.content) == sha256(BIG)


def test_create_answers_with_one_signed_url_per_part(esd):
    response = esd.post(
        "/prod/checkpoints",
        user="api",
        json={
            "checkpoint_type": "Stable-diffusion",
            "params": {"message": "m", "creator": "someone-else"},
            "filenames": [
                {"filename": "a.safetensors", "parts_number": 3},
                {"filename": "b.safetensors", "parts_number": 1},
            ],
        },
    )
    assert response.status_code == 201
    body = response.json()
    assert body["message"] == "Created"
    checkpoint = body["data"]["checkpoint"]
    assert checkpoint["status"] == "Initial" and checkpoint["type"] == "Stable-diffusion"
    assert checkpoint["params"]["creator"] == "api" and checkpoint["params"]["message"] == "m"
    assert checkpoint["s3_location"].endswith(f"Stable-diffusion/checkpoint/custom/{checkpoint['id']}")
    upload = checkpoint["params"]["multipart_upload"]["a.safetensors"]
    assert upload["key"] == f"Stable-diffusion/checkpoint/custom/{checkpoint['id']}/a.safetensors"
    assert len(body["data"]["s3PresignUrl"]["a.safetensors"]) == 3
    assert len(body["data"]["s3PresignUrl"]["b.safetensors"]) == 1


def test_wrong_etag_is_a_400_naming_the_part(esd):
    created = esd.post(
        "/prod/checkpoints",
        user="api",
        json={"checkpoint_type": "Lora", "params": {}, "filenames": [{"filename": "w.safetensors", "parts_number": 2}]},
    )
    checkpoint_id = created.json()["data"]["checkpoint"]["id"]
    urls = created.json()["data"]["s3PresignUrl"]["w.safetensors"]
    etags = [put_part(esd, url, os.urandom(1000)).headers["ETag"] for url in urls]
    response = esd.put(
        f"/prod/checkpoints/{checkpoint_id}",
        json={
            "status": "Active",
            "multi_parts_tags": {
                "w.safetensors": [{"ETag": etags[0], "PartNumber": 1}, {"ETag": '"0000"', "PartNumber": 2}]
            },
        },
    )
    assert response.status_code == 400
    assert "2" in response.json()["message"]
    still = esd.get("/prod/checkpoints", user="api").json()["data"]["checkpoints"][0]
    assert still["status"] == "Initial"


def test_activation_without_the_files_content_is_refused(esd):
    created = esd.post(
        "/prod/checkpoints",
        user="api",
        json={"checkpoint_type": "Lora", "params": {}, "filenames": [{"filename": "n.safetensors", "parts_number": 1}]},
    )
    checkpoint_id = created.json()["data"]["checkpoint"]["id"]
    response = esd.put(
        f"/prod/checkpoints/{checkpoint_id}", json={"status": "Active", "multi_parts_tags": {"other": []}}
    )
    assert response.status_code == 400
    assert "n.safetensors" in response.json()["message"]


def test_update_messages(esd):
    assert esd.put("/prod/checkpoints/nope", key=None).json() == {"message": "Forbidden"}
    missing = esd.put("/prod/checkpoints/nope", json={"status": "Active", "multi_parts_tags": {"x": []}})
    assert missing.status_code == 404
    assert missing.json() == {"statusCode": 404, "message": "checkpoint not found with id nope"}
    checkpoint = upload_file(esd, "u.safetensors", model_file_bytes("lora", salt="u"), parts=1)
    path = f"/prod/checkpoints/{checkpoint['id']}"
    assert esd.put(path, json={"status": "Active"}).json()["message"] == "multi parts tags is empty"
    assert esd.put(path, json={"status": "Foo", "multi_parts_tags": {"u": []}}).json()["message"] == "'Foo'"
    empty_name = esd.put(path, json={"status": "Active", "name": ""})
    assert empty_name.status_code == 400 and "required minimum: 1" in empty_name.json()["message"]
    assert esd.put(path, json={}).json() == {"statusCode": 200, "message": "OK"}
    disabled = esd.put(path, json={"status": "Disabled", "multi_parts_tags": {"u.safetensors": []}})
    assert disabled.json()["data"]["checkpoint"]["status"] == "Disabled"


def test_same_name_twice_is_refused(esd):
    upload_file(esd, "dup.safetensors", model_file_bytes("lora", salt="dup"), parts=1)
    response = esd.post(
        "/prod/checkpoints",
        user="api",
        json={
            "checkpoint_type": "VAE",
            "params": {},
            "filenames": [{"filename": " dup.safetensors ", "parts_number": 1}],
        },
    )
    assert response.status_code == 400
    assert response.json()["message"] == "dup.safetensors already exists, please use another or rename/delete exists"


def test_same_content_under_the_same_type_is_reported(esd):
    same = model_file_bytes("lora", salt="same bytes")
    first = upload_file(esd, "one.safetensors", same, parts=1)
    second = upload_file(esd, "two.safetensors", same, parts=1)
    assert second["params"]["duplicate_of"] == first["id"]


@pytest.mark.parametrize("name", ["../evil.safetensors", "a/b.safetensors", "..", "c\\d.pt"])
def test_file_names_with_path_parts_are_refused(esd, name):
    response = esd.post(
        "/prod/checkpoints",
        user="api",
        json={"checkpoint_type": "Lora", "params": {}, "filenames": [{"filename": name, "parts_number": 1}]},
    )
    assert response.status_code == 400
    assert "not allowed" in response.json()["message"]


def test_create_messages(esd):
    no_params = esd.post(
        "/prod/checkpoints",
        user="api",
        json={"checkpoint_type": "Lora", "filenames": [{"filename": "a", "parts_number": 1}]},
    )
    assert (
        no_params.json()["message"]
        == "CreateCheckPointEvent.__init__() missing 1 required positional argument: 'params'"
    )
    no_files = esd.post("/prod/checkpoints", user="api", json={"checkpoint_type": "Lora", "params": {}})
    assert no_files.json()["message"] == "no checkpoint name (file names) detected"
    bad_type = esd.post("/prod/checkpoints", user="api", json={"checkpoint_type": "Loras", "params": {}})
    assert bad_type.status_code == 400
    assert 'instance value ("Loras") not found in enum' in bad_type.json()["message"]
    too_many = esd.post(
        "/prod/checkpoints",
        user="api",
        json={"checkpoint_type": "Lora", "params": {}, "filenames": [{"filename": "a", "parts_number": 101}]},
    )
    assert (
        "numeric instance is greater than the required maximum (maximum: 100, found: 101)" in too_many.json()["message"]
    )
    assert esd.post("/prod/checkpoints", json={"checkpoint_type": "Lora", "params": {}}).status_code == 401


def test_rename_moves_the_file_and_keeps_the_hash(esd):
    lora = model_file_bytes("lora", salt="lora bytes")
    checkpoint = upload_file(esd, "cartoony.safetensors", lora, parts=1)
    path = f"/prod/checkpoints/{checkpoint['id']}"
    assert esd.put(path, json={"name": "cartoony.safetensors"}).status_code == 400  # pattern: no dots
    response = esd.put(path, json={"name": "cartoony"})
    assert response.status_code == 202
    assert response.json() == {"statusCode": 202, "message": "rename is processing, please wait"}
    item = esd.get("/prod/checkpoints", user="api").json()["data"]["checkpoints"][0]
    assert item["name"] == ["cartoony"] and item["hash"] == sha256(lora)
    store = esd.http.app.state.store
    folder = f"Lora/checkpoint/custom/{checkpoint['id']}"
    assert store.get_bytes(f"{folder}/cartoony") == lora
    assert store.stat(f"{folder}/cartoony.safetensors") is None
    assert esd.put(path, json={"name": "cartoony"}).json()["message"] == "no need to update"
    other = upload_file(esd, "other.safetensors", model_file_bytes("lora", salt="x"), parts=1)
    taken = esd.put(f"/prod/checkpoints/{other['id']}", json={"name": "cartoony"})
    assert taken.json()["message"] == "cartoony already exists, please use another or rename/delete exists"


def test_rename_needs_active(esd):
    created = esd.post(
        "/prod/checkpoints",
        user="api",
        json={"checkpoint_type": "Lora", "params": {}, "filenames": [{"filename": "i.safetensors", "parts_number": 1}]},
    )
    checkpoint_id = created.json()["data"]["checkpoint"]["id"]
    response = esd.put(f"/prod/checkpoints/{checkpoint_id}", json={"name": "newname"})
    assert response.json() == {"statusCode": 400, "message": "only active can update name"}


def test_delete_removes_records_and_stored_files(esd):
    checkpoint = upload_file(esd, "del.safetensors", model_file_bytes("lora", salt="bytes"), parts=1)
    pending = esd.post(
        "/prod/checkpoints",
        user="api",
        json={"checkpoint_type": "Lora", "params": {}, "filenames": [{"filename": "p.safetensors", "parts_number": 1}]},
    )
    pending_id = pending.json()["data"]["checkpoint"]["id"]
    put_part(esd, pending.json()["data"]["s3PresignUrl"]["p.safetensors"][0], b"half-uploaded")
    bad = esd.delete("/prod/checkpoints", json={})
    assert bad.status_code == 400 and "checkpoint_id_list" in bad.json()["message"]
    response = esd.delete("/prod/checkpoints", json={"checkpoint_id_list": [checkpoint["id"], pending_id, "unknown"]})
    assert response.status_code == 204
    store = esd.http.app.state.store
    assert store.list(f"Lora/checkpoint/custom/{checkpoint['id']}/") == []
    assert esd.get("/prod/checkpoints", user="api").json()["data"]["total"] == 0
    # the name is free again
    upload_file(esd, "del.safetensors", model_file_bytes("lora", salt="again"), parts=1)
