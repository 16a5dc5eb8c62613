"""§11 legacy datasets as the v1.3 WebUI calls them, checked against the 1.5.0 view of the same records."""

from __future__ import annotations

from tests.checkpoints.conftest import get_url, put_part
from tests.datasets.conftest import png

HEX_API = {"Authorization": "Bearer " + b"api".hex().upper()}


def legacy_dataset(client, name: str, files: dict[str, bytes], enable: bool = True, creator: str = "api") -> dict:
    """The WebUI flow: POST /dataset, PUT each file to its URL, PUT /dataset Enabled."""
    content = [{"filename": f, "name": f, "type": "image", "params": {}} for f in files]
    created = client.post(
        "/dataset",
        json={
            "dataset_name": name,
            "content": content,
            "params": {"description": "this is description"},
            "creator": creator,
        },
    )
    assert created.status_code == 200, created.text
    for filename, url in created.json()["s3PresignUrl"].items():
        assert put_part(client, url, files[filename]).status_code == 200
    if enable:
        enabled = client.put("/dataset", json={"dataset_name": name, "status": "Enabled"}).json()
        assert enabled == {"statusCode": 200, "datasetName": name, "status": "Enabled"}
    return created.json()


def test_the_webui_flow_and_both_views(legacy):
    created = legacy_dataset(legacy, "test_dataset", {"1.png": png(seed=1), "2.png": png(seed=2)})
    assert created["statusCode"] == 200 and created["datasetName"] == "test_dataset"
    assert sorted(created["s3PresignUrl"]) == ["1.png", "2.png"]

    listed = legacy.get("/legacy/datasets", headers=HEX_API).json()
    assert listed["statusCode"] == 200
    [item] = listed["datasets"]
    assert item["datasetName"] == "test_dataset" and item["status"] == "Enabled"
    assert item["description"] == "this is description" and isinstance(item["timestamp"], float)
    assert item["s3"].endswith("/dataset/test_dataset")
    assert legacy.get("/legacy/datasets", params={"dataset_status": "Disabled"}).json() == {
        "statusCode": 200,
        "datasets": [],
    }

    for path in ("/dataset/test_dataset/data", "/prod/dataset/test_dataset/data", "/legacy/test_dataset/data"):
        data = legacy.get(path, headers=HEX_API).json()
        assert data["statusCode"] == 200 and data["dataset_name"] == data["datasetName"] == "test_dataset", path
        assert data["status"] == "Enabled" and isinstance(data["timestamp"], float)
        assert data["description"] == "this is description"
        assert [(d["name"], d["type"], d["dataStatus"], d["original_file_name"]) for d in data["data"]] == [
            ("1.png", "image", "Enabled", "1.png"),
            ("2.png", "image", "Enabled", "2.png"),
        ]
        assert get_url(legacy, data["data"][0]["preview_url"]).content == png(seed=1)

    # the same record through 1.5.0; the documented top-level form is not on the primary mount
    modern = legacy.get("/prod/datasets/test_dataset", user="api").json()["data"]
    assert modern["status"] == "Enabled" and len(modern["data"]) == 2
    assert legacy.get("/prod/test_dataset/data").json() == {"message": "Missing Authentication Token"}
    # on the primary mount GET /datasets stays 1.5.0
    assert legacy.get("/prod/datasets", user="api").json()["data"]["datasets"][0]["datasetName"] == "test_dataset"


def test_client_paths_are_reduced_to_file_names(legacy):
    content = [{"filename": "C:\\photos\\cat.png", "name": "cat.png", "type": "image", "params": {}}]
    created = legacy.post("/dataset", json={"dataset_name": "cats", "content": content, "params": {}}).json()
    assert list(created["s3PresignUrl"]) == ["cat.png"]
    bad = [{"filename": "../../etc/passwd", "name": "x", "type": "image", "params": {}}]
    assert legacy.post("/dataset", json={"dataset_name": "cats", "content": bad}).json() == {
        "statusCode": 500,
        "error": "filename '../../etc/passwd' is not allowed: it must name a file, without '..'",
    }


def test_create_errors_name_the_problem(legacy):
    one = [{"filename": "1.png", "name": "1.png", "type": "image", "params": {}}]
    bad_name = legacy.post("/dataset", json={"dataset_name": "1 bad", "content": one, "params": {}}).json()
    assert bad_name["statusCode"] == 500 and "1 bad" in bad_name["error"] and "regex" in bad_name["error"]
    no_content = legacy.post("/dataset", json={"dataset_name": "ok", "content": [], "params": {}}).json()
    assert no_content["statusCode"] == 500 and "content must be a non-empty list" in no_content["error"]
    missing_key = legacy.post("/dataset", json={"dataset_name": "ok", "content": [{"filename": "1.png"}]}).json()
    assert missing_key["statusCode"] == 500 and "content[0]" in missing_key["error"] and "name" in missing_key["error"]
    assert legacy.post("/dataset", json={"dataset_name": "ok", "content": one, "creator": "ghost"}).json() == {
        "statusCode": 400,
        "errMsg": 'user: "ghost" not exist',
    }
    legacy.post("/prod/roles", user="api", json={"role_name": "viewer", "permissions": ["train:list"]})
    legacy.post("/prod/users", user="api", json={"username": "vic", "password": "pw", "roles": ["viewer"]})
    assert legacy.post("/dataset", json={"dataset_name": "ok", "content": one, "creator": "vic"}).json() == {
        "statusCode": 400,
        "errMsg": "user vic has not permission to create a train job",
    }
    not_json = legacy.call("POST", "/dataset", content=b"[1, 2]", headers={"content-type": "application/json"})
    assert (not_json.status_code, not_json.json()) == (400, {"message": "Invalid request body"})


def test_status_errors_and_missing_uploads(legacy):
    assert legacy.put("/dataset", json={"dataset_name": "nope", "status": "Enabled"}).json() == {
        "statusCode": 404,
        "errorMsg": "dataset nope is not found",
    }
    legacy_dataset(legacy, "half", {"1.png": png(), "2.png": png(seed=2)}, enable=False)
    assert legacy.put("/dataset", json={"dataset_name": "half", "status": "Bogus"}).json() == {
        "statusCode": 500,
        "error": "'Bogus'",
    }
    never = legacy.post(
        "/dataset",
        json={
            "dataset_name": "never",
            "params": {},
            "content": [{"filename": "3.png", "name": "3.png", "type": "image", "params": {}}],
        },
    ).json()
    assert never["statusCode"] == 200
    refused = legacy.put("/dataset", json={"dataset_name": "never", "status": "Enabled"}).json()
    assert refused["statusCode"] == 500 and "were never uploaded" in refused["error"] and "3.png" in refused["error"]
    assert legacy.put("/dataset", json={"dataset_name": "half", "status": "Disabled"}).json()["status"] == "Disabled"
    data = legacy.get("/dataset/half/data").json()
    assert data["status"] == "Disabled" and {d["dataStatus"] for d in data["data"]} == {"Disabled"}


def test_reading_errors_and_visibility(legacy):
    assert legacy.get("/legacy/datasets").json() == {"statusCode": 200, "datasets": []}
    assert legacy.get("/dataset/nope/data").json() == {
        "statusCode": 500,
        "error": "path parameter /dataset/{dataset_name}/ are not found",
    }
    legacy_dataset(legacy, "private", {"1.png": png()})
    legacy.post("/prod/roles", user="api", json={"role_name": "trainer", "permissions": ["train:all"]})
    legacy.post("/prod/users", user="api", json={"username": "tom", "password": "pw", "roles": ["trainer"]})
    assert legacy.get("/dataset/private/data", user="tom").json() == {
        "statusCode": 400,
        "error": "no permission to view dataset",
    }
    assert legacy.get("/legacy/datasets", user="tom").json() == {"statusCode": 200, "datasets": []}
    assert legacy.get("/legacy/datasets", user="ghost").json() == {
        "statusCode": 400,
        "error": 'user: "ghost" not exist',
    }
    legacy.post("/prod/roles", user="api", json={"role_name": "none", "permissions": ["checkpoint:list"]})
    legacy.post("/prod/users", user="api", json={"username": "nat", "password": "pw", "roles": ["none"]})
    assert legacy.get("/legacy/datasets", user="nat").json() == {
        "statusCode": 400,
        "error": "user has no permission to train",
    }
