"""Datasets as ESD clients use them (esd-api.md §9): signed uploads, statuses with validation, visibility."""

from __future__ import annotations

import pytest

from tests.checkpoints.conftest import get_url
from tests.datasets.conftest import create_dataset, kohya_files, png, upload_dataset


def test_upload_enable_and_read_back_through_preview_urls(esd):
    files = kohya_files(2)
    assert upload_dataset(esd, "cats", files) == {"datasetName": "cats", "status": "Enabled"}
    response = esd.get("/prod/datasets/cats", user="api")
    assert response.status_code == 200
    data = response.json()["data"]
    assert (data["dataset_name"], data["datasetName"], data["prefix"], data["status"]) == (
        "cats",
        "cats",
        "10_cat",
        "Enabled",
    )
    assert data["description"] == "cats" and data["s3"].endswith("dataset/cats/10_cat")
    assert float(data["timestamp"]) > 0 and isinstance(data["timestamp"], str)
    by_name = {item["name"]: item for item in data["data"]}
    assert set(by_name) == set(files)
    item = by_name["0.png"]
    assert item["type"] == "image" and item["dataStatus"] == "Enabled" and item["original_file_name"] == "0.png"
    assert item["key"] == f"{data['timestamp']}_0.png"
    assert get_url(esd, item["preview_url"]).content == files["0.png"]


def test_create_answers_201_with_one_put_url_per_file_and_initialed_status(esd):
    created = create_dataset(esd, "cats", kohya_files(1))
    assert created.status_code == 201
    body = created.json()
    assert body["message"] == "Created" and body["data"]["datasetName"] == "cats"
    assert set(body["data"]["s3PresignUrl"]) == {"0.png", "0.txt"}
    listed = esd.get("/prod/datasets", user="api").json()["data"]
    assert [(d["datasetName"], d["status"], d["description"]) for d in listed["datasets"]] == [
        ("cats", "Initialed", "cats")
    ]
    assert listed["last_evaluated_key"] is None


def test_enabling_lists_every_problem_and_changes_nothing(esd):
    files = {
        "0.png": png(seed=0),
        "0.txt": b"cat",
        "1.png": png(seed=1),
        "2.png": b"not an image",
        "2.txt": b"x",
        "3.png": png(seed=3),
        "3.txt": b"never uploaded",
    }
    created = create_dataset(esd, "bad", files)
    urls = created.json()["data"]["s3PresignUrl"]
    for name in ("0.png", "0.txt", "1.png", "2.png", "2.txt", "3.png"):
        from tests.checkpoints.conftest import put_part

        put_part(esd, urls[name], files[name])
    response = esd.put("/prod/datasets/bad", user="api", json={"status": "Enabled"})
    assert response.status_code == 400
    assert response.json()["message"] == (
        "dataset bad cannot be Enabled: 1 file(s) were never uploaded to their signed URL: 3.txt"
    )
    from tests.checkpoints.conftest import put_part

    put_part(esd, urls["3.txt"], files["3.txt"])
    message = esd.put("/prod/datasets/bad", user="api", json={"status": "Enabled"}).json()["message"]
    assert message.startswith("dataset bad cannot be Enabled: it has 1 problem(s): ")
    assert "10_cat/2.png cannot be read as an image (not a PNG, JPEG, WEBP, BMP or GIF file)" in message
    assert esd.get("/prod/datasets/bad", user="api").json()["data"]["status"] == "Initialed"


def test_esd_client_flow_without_captions_is_enabled_with_a_note(esd):
    """ESD's client test suite uploads bare images into `10_technic/`; kohya captions them `technic`."""
    files = {f"{n}.png": png(seed=n) for n in range(3)}
    enabled = upload_dataset(esd, "technic", files, prefix="10_technic")
    note = (
        "3 image(s) in 10_technic have no .txt caption file: they are trained with their folder's concept "
        "name `technic`"
    )
    assert enabled == {"datasetName": "technic", "status": "Enabled", "notes": [note]}
    data = esd.get("/prod/datasets/technic", user="api").json()["data"]
    assert (data["status"], data["notes"], data["description"]) == ("Enabled", [note], "cats")
    assert esd.put("/prod/datasets/technic", user="api", json={"status": "Disabled"}).status_code == 200
    assert esd.get("/prod/datasets/technic", user="api").json()["data"]["notes"] == [note]


def test_captioned_datasets_carry_no_notes(esd):
    assert upload_dataset(esd, "cats", kohya_files(2)) == {"datasetName": "cats", "status": "Enabled"}
    assert "notes" not in esd.get("/prod/datasets/cats", user="api").json()["data"]


def test_a_truncated_upload_cannot_be_enabled(esd):
    files = {"0.png": png(seed=0)[:-40], "0.txt": b"cat"}
    upload_dataset(esd, "cut", files, enable=False)
    response = esd.put("/prod/datasets/cut", user="api", json={"status": "Enabled"})
    assert response.status_code == 400
    assert (
        "10_cat/0.png cannot be read as an image (PNG cut short (no IEND chunk at its end))"
        in response.json()["message"]
    )


def test_images_outside_a_kohya_folder_cannot_be_enabled(esd):
    upload_dataset(esd, "flat", kohya_files(1), prefix="", enable=False)
    response = esd.put("/prod/datasets/flat", user="api", json={"status": "Enabled"})
    assert response.status_code == 400
    assert "images must be inside <repeats>_<concept> folders, found at the top: 0.png" in response.json()["message"]
    assert esd.put("/prod/datasets/flat", user="api", json={"status": "Disabled"}).status_code == 200


def test_status_rules_and_messages(esd):
    assert esd.put("/prod/datasets/nope", user="api", json={"status": "Enabled"}).json() == {
        "statusCode": 404,
        "message": "dataset nope is not found",
    }
    upload_dataset(esd, "cats", kohya_files(1), enable=False)
    assert esd.put("/prod/datasets/cats", user="api", json={"status": "Foo"}).json() == {
        "statusCode": 400,
        "message": "'Foo'",
    }
    missing = esd.put("/prod/datasets/cats", user="api", json={})
    assert (
        missing.status_code == 400
        and 'object has missing required properties (["status"])' in missing.json()["message"]
    )
    assert esd.put("/prod/datasets/cats", user="api", json={"status": "Disabled"}).json()["data"] == {
        "datasetName": "cats",
        "status": "Disabled",
    }
    items = esd.get("/prod/datasets/cats", user="api").json()["data"]["data"]
    assert {i["dataStatus"] for i in items} == {"Disabled"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"content": [], "creator": "api"}, 'object has missing required properties (["dataset_name"])'),
        (
            {"dataset_name": "1cats", "content": [{"filename": "a"}], "creator": "api"},
            'ECMA 262 regex "^[A-Za-z][A-Za-z0-9_-]*$" does not match input string "1cats"',
        ),
        (
            {"dataset_name": "cats", "content": [], "creator": "api"},
            "array is too short: must have at least 1 elements but instance has 0 elements",
        ),
        (
            {
                "dataset_name": "cats",
                "content": [{"filename": "a.png", "name": "a", "type": "image", "params": {}}],
                "creator": "api",
            },
            "DatasetCreateEvent.__init__() missing 1 required positional argument: 'params'",
        ),
        (
            {
                "dataset_name": "cats",
                "content": [{"filename": "a.png", "name": "a", "type": "image"}],
                "creator": "api",
                "params": {},
            },
            "DataUploadEvent.__init__() missing 1 required positional argument: 'params'",
        ),
        (
            {
                "dataset_name": "cats",
                "content": [{"filename": "../a.png", "name": "a", "type": "image", "params": {}}],
                "creator": "api",
                "params": {},
            },
            "file name '../a.png' is not allowed",
        ),
        (
            {
                "dataset_name": "cats",
                "content": [{"filename": "a.png", "name": "a", "type": "image", "params": {}}],
                "creator": "api",
                "params": {},
                "prefix": "10_cat/../../x",
            },
            "prefix '10_cat/../../x' is not allowed",
        ),
    ],
)
def test_bad_create_bodies_get_400_naming_the_problem(esd, body, message):
    response = esd.post("/prod/datasets", user="api", json=body)
    assert response.status_code == 400
    assert message in response.json()["message"]


def test_identity_and_permission_come_after_the_body(esd):
    body = {
        "dataset_name": "cats",
        "content": [{"filename": "a.png", "name": "a", "type": "image", "params": {}}],
        "creator": "x",
        "params": {},
    }
    assert esd.post("/prod/datasets", json=body).status_code == 401
    assert esd.post("/prod/datasets", key=None, json=body).json() == {"message": "Forbidden"}
    esd.post("/prod/roles", user="api", json={"role_name": "viewer", "permissions": ["checkpoint:list"]})
    esd.post("/prod/users", user="api", json={"username": "bob", "password": "pw", "roles": ["viewer"]})
    denied = esd.get("/prod/datasets", user="bob")
    assert denied.json() == {"statusCode": 403, "message": "User bob has no permissions: ['train:all']"}


def test_visibility_follows_the_creators_roles(esd):
    esd.post("/prod/roles", user="api", json={"role_name": "team", "permissions": ["train:all"]})
    esd.post("/prod/users", user="api", json={"username": "bob", "password": "pw", "roles": ["team"]})
    upload_dataset(esd, "mine", kohya_files(1), enable=False)  # owned by IT Operator
    assert esd.get("/prod/datasets", user="bob").json()["data"] == {"datasets": []}
    assert esd.get("/prod/datasets/mine", user="bob").json() == {
        "statusCode": 403,
        "message": "no permission to view dataset",
    }
    assert esd.get("/prod/datasets/nope", user="bob").json() == {
        "statusCode": 404,
        "message": "dataset nope is not found",
    }
    upload_dataset(esd, "bobs", kohya_files(1), enable=False, user="bob")
    assert [d["datasetName"] for d in esd.get("/prod/datasets", user="bob").json()["data"]["datasets"]] == ["bobs"]


def test_listing_pages_filters_by_status_and_delete_removes_the_objects(esd):
    for name in ("a1", "a2", "a3"):
        upload_dataset(esd, name, kohya_files(1), enable=name != "a2")
    first = esd.get("/prod/datasets", user="api", params={"limit": 2}).json()["data"]
    assert [d["datasetName"] for d in first["datasets"]] == ["a3", "a2"] and first["last_evaluated_key"]
    rest = esd.get(
        "/prod/datasets", user="api", params={"limit": 2, "exclusive_start_key": first["last_evaluated_key"]}
    )
    assert [d["datasetName"] for d in rest.json()["data"]["datasets"]] == ["a1"]
    enabled = esd.get("/prod/datasets", user="api", params={"dataset_status": "Enabled"}).json()["data"]["datasets"]
    assert [d["datasetName"] for d in enabled] == ["a3", "a1"]
    store = esd.http.app.state.store
    assert store.list("dataset/a1/")
    bad = esd.delete("/prod/datasets", json={"dataset_name_list": []})
    assert bad.status_code == 400 and "array is too short" in bad.json()["message"]
    missing = esd.delete("/prod/datasets", json={})
    assert (
        "object has missing required properties" in missing.json()["message"]
        and "dataset_name_list" in missing.json()["message"]
    )
    assert esd.delete("/prod/datasets", json={"dataset_name_list": ["a1", "a1", "nope"]}).status_code == 204
    assert store.list("dataset/a1/") == []
    assert esd.get("/prod/datasets/a1", user="api").status_code == 404
    assert [d["datasetName"] for d in esd.get("/prod/datasets", user="api").json()["data"]["datasets"]] == ["a3", "a2"]


def test_a_second_post_adds_files_under_another_prefix_and_replaces_same_keys(esd):
    upload_dataset(esd, "cats", kohya_files(1), prefix="10_cat", enable=False)
    upload_dataset(esd, "cats", kohya_files(2), prefix="5_dog", enable=False)
    upload_dataset(esd, "cats", kohya_files(1), prefix="5_dog", enable=True)
    data = esd.get("/prod/datasets/cats", user="api").json()["data"]
    assert data["prefix"] == "5_dog" and len(data["data"]) == 6
    store = esd.http.app.state.store
    assert sorted(o.key for o in store.list("dataset/cats/")) == [
        "dataset/cats/10_cat/0.png",
        "dataset/cats/10_cat/0.txt",
        "dataset/cats/5_dog/0.png",
        "dataset/cats/5_dog/0.txt",
        "dataset/cats/5_dog/1.png",
        "dataset/cats/5_dog/1.txt",
    ]
