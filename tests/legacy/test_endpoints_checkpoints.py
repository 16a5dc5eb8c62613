"""§3.2 dispatch, §6 endpoints and §8 checkpoints, checked against the 1.5.0 view of the same records."""

from __future__ import annotations

from tests.checkpoints.conftest import put_part
from tests.legacy.conftest import legacy_create
from tests.support.model_files import model_file_bytes

HEADERS = {
    "Access-Control-Allow-Headers": "Content-Type",
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "OPTIONS,POST,GET",
}


def modern_endpoints(client) -> list[dict]:
    return client.get("/prod/endpoints", user="api", params={"limit": 100}).json()["data"]["endpoints"]


def test_legacy_create_on_the_primary_mount_is_a_1_5_endpoint(legacy):
    created = legacy_create(legacy, autoscaling_enabled=True, creator="api")
    name = created["data"]["endpoint_name"]
    assert created["statusCode"] == 200 and created["message"] == f"Endpoint deployment started: {name}"
    data = created["data"]
    assert data["endpoint_status"] == "Creating" and data["status"] == "inprogress"
    assert data["max_instance_number"] == "1" and data["current_instance_count"] == "0"
    assert data["owner_group_or_role"] == ["*"] and data["autoscaling"] is True
    assert [s.name for s in legacy.engine.deployed] == [name]
    [modern] = modern_endpoints(legacy)
    assert modern["EndpointDeploymentJobId"] == data["EndpointDeploymentJobId"] and modern["endpoint_type"] == "Async"
    # no explicit roles: a second legacy endpoint is allowed (v1.0–v1.2 allowed several)
    assert legacy_create(legacy, path="/legacy/endpoints")["statusCode"] == 200


def test_body_dispatch_leaves_1_5_requests_unchanged(legacy):
    wrong = legacy.post("/prod/endpoints", user="api", json={"none": "none"})
    assert wrong.status_code == 400 and "object has missing required properties" in wrong.json()["message"]
    modern = legacy.post(
        "/endpoints",
        user="api",
        json={
            "endpoint_type": "Async",
            "instance_type": "cpu",
            "initial_instance_count": 1,
            "autoscaling_enabled": False,
            "assign_to_roles": ["byoc"],
            "creator": "api",
        },
    )
    assert modern.status_code == 202 and modern.json()["data"]["endpoint_name"].startswith("esd-async-")
    gone = legacy.delete(
        "/prod/endpoints", user="api", json={"endpoint_name_list": [modern.json()["data"]["endpoint_name"]]}
    )
    assert gone.status_code == 204


def test_legacy_create_errors(legacy):
    assert legacy_create(legacy, initial_instance_count="0") == {
        "statusCode": 400,
        "message": "initial_instance_count should be at least 1:",
    }
    assert legacy_create(legacy, initial_instance_count="many")["statusCode"] == 400
    assert legacy_create(legacy, creator="ghost") == {"statusCode": 400, "message": 'user: "ghost" not exist'}
    legacy.post("/prod/roles", user="api", json={"role_name": "viewer", "permissions": ["sagemaker_endpoint:list"]})
    legacy.post("/prod/users", user="api", json={"username": "vic", "password": "pw", "roles": ["viewer"]})
    assert legacy_create(legacy, creator="vic") == {
        "statusCode": 400,
        "message": "Creator vic has no permission to create Sagemaker",
    }
    legacy_create(legacy, assign_to_roles=["byoc"])
    assert legacy_create(legacy, assign_to_roles=["byoc"]) == {
        "statusCode": 400,
        "message": "role [byoc] has a valid endpoint already, not allow to have another one",
    }
    bad = legacy.post("/legacy/endpoints", json={"instance_type": 5, "initial_instance_count": "1"})
    assert (bad.status_code, bad.json()) == (400, {"message": "Invalid request body"})


def test_legacy_lists_and_lookups_of_endpoints(legacy):
    data = legacy_create(legacy)["data"]
    listed = legacy.get("/legacy/endpoints", headers={"Authorization": "Bearer " + b"api".hex().upper()}).json()
    assert listed["statusCode"] == 200 and [e["endpoint_name"] for e in listed["endpoints"]] == [data["endpoint_name"]]
    assert listed["endpoints"][0]["status"] == "inprogress"
    assert legacy.get("/legacy/endpoints", params={"username": "ghost"}).json() == {
        "statusCode": "400",
        "error": 'user: "ghost" not exist',
    }
    # on the primary mount the same GET stays 1.5.0
    assert (
        legacy.get("/prod/endpoints", user="api").json()["data"]["endpoints"][0]["endpoint_name"]
        == data["endpoint_name"]
    )
    bare = legacy.get("/inference/list-endpoint-deployment-jobs").json()
    assert [e["EndpointDeploymentJobId"] for e in bare] == [data["EndpointDeploymentJobId"]]
    one = legacy.get("/inference/get-endpoint-deployment-job", params={"jobID": data["EndpointDeploymentJobId"]})
    assert one.json()["endpoint_name"] == data["endpoint_name"]
    assert legacy.get("/inference/get-endpoint-deployment-job", params={"jobID": "nope"}).json() == {}
    assert legacy.get("/inference/get-endpoint-deployment-job").json() == {}


def test_legacy_deletes_by_name_or_id_in_every_form(legacy):
    first, second, third = (legacy_create(legacy)["data"] for _ in range(3))
    assert (
        legacy.post("/prod/endpoints", json={"delete_endpoint_list": [first["endpoint_name"], "unknown"]}).json()
        == "Endpoint deleted"
    )
    assert (
        legacy.delete(
            "/endpoints", json={"delete_endpoint_list": [second["EndpointDeploymentJobId"]], "username": "api"}
        ).json()
        == "Endpoint deleted"
    )
    assert (
        legacy.post(
            "/inference/delete-sagemaker-endpoint", json={"delete_endpoint_list": [third["endpoint_name"]]}
        ).json()
        == "Endpoint delete completed"
    )
    assert modern_endpoints(legacy) == []
    assert len(legacy.engine.undeployed) == 3
    refused = legacy.delete("/legacy/endpoints", json={"delete_endpoint_list": ["x"], "username": "ghost"}).json()
    assert refused == 'error deleting sagemaker endpoint with exception: user: "ghost" not exist'
    bad = legacy.delete("/legacy/endpoints", json={"delete_endpoint_list": "x"})
    assert (bad.status_code, bad.json()) == (400, {"message": "Invalid request body"})


def legacy_upload(client, name: str, data: bytes, kind: str = "Stable-diffusion") -> dict:
    created = client.post(
        "/checkpoint",
        json={
            "checkpoint_type": kind,
            "filenames": [{"filename": name, "parts_number": 2}],
            "params": {"message": "description", "creator": "api"},
        },
    )
    assert created.status_code == 200
    body = created.json()
    assert body["statusCode"] == 200 and body["headers"] == HEADERS, body
    checkpoint = body["checkpoint"]
    assert checkpoint["status"] == "Initial" and checkpoint["params"]["creator"] == "api"
    assert checkpoint["s3_location"].endswith(f"{kind}/checkpoint/custom/{checkpoint['id']}")
    tags = []
    for number, url in enumerate(body["s3PresignUrl"][name], start=1):
        response = put_part(client, url, data[(number - 1) * 3 : number * 3] if number == 1 else data[3:])
        tags.append({"ETag": response.headers["ETag"], "PartNumber": number})
    done = client.put(
        "/checkpoint", json={"checkpoint_id": checkpoint["id"], "status": "Active", "multi_parts_tags": {name: tags}}
    ).json()
    assert done["statusCode"] == 200 and done["checkpoint"]["id"] == checkpoint["id"], done
    return checkpoint


def test_checkpoint_upload_flow_and_both_listings(legacy):
    model = model_file_bytes(salt="v1-5")
    checkpoint = legacy_upload(legacy, "v1-5.safetensors", model)
    stored = legacy.http.app.state.store.get_bytes(
        f"Stable-diffusion/checkpoint/custom/{checkpoint['id']}/v1-5.safetensors"
    )
    assert stored == model
    listed = legacy.get(
        "/legacy/checkpoints", params={"status": "Active", "types": "Stable-diffusion", "username": "api"}
    ).json()
    assert listed["statusCode"] == 200
    [item] = listed["checkpoints"]
    assert (
        item["id"] == checkpoint["id"] and item["name"] == ["v1-5.safetensors"] and isinstance(item["created"], float)
    )
    assert set(item) >= {"id", "s3Location", "type", "status", "name", "created", "allowed_roles_or_users"}
    assert legacy.get("/legacy/checkpoints", params={"types": "Lora"}).json() == {"statusCode": 200, "checkpoints": []}
    modern = legacy.get("/prod/checkpoints", user="api").json()["data"]["checkpoints"]
    assert [c["id"] for c in modern] == [checkpoint["id"]] and modern[0]["status"] == "Active"
    # a status change alone (empty multi_parts_tags) is allowed
    disabled = legacy.put(
        "/checkpoint", json={"checkpoint_id": checkpoint["id"], "status": "Disabled", "multi_parts_tags": {}}
    ).json()
    assert disabled["statusCode"] == 200
    assert legacy.get("/prod/checkpoints", user="api").json()["data"]["checkpoints"][0]["status"] == "Disabled"


def test_checkpoint_errors_keep_their_keys(legacy):
    legacy_upload(legacy, "taken.safetensors", model_file_bytes(salt="taken"))
    post = lambda **body: legacy.post("/checkpoint", json={"checkpoint_type": "Lora", "params": {}, **body}).json()  # noqa: E731
    assert post(filenames=[]) == {
        "statusCode": 400,
        "headers": HEADERS,
        "errorMsg": "no checkpoint name (file names) detected",
    }
    assert post(filenames=[{"filename": "taken.safetensors", "parts_number": 1}]) == {
        "statusCode": 500,
        "headers": HEADERS,
        "error": "taken.safetensors already exists, please use another or rename/delete exists",
    }
    assert post(checkpoint_type="Bogus", filenames=[{"filename": "x", "parts_number": 1}])["error"].startswith(
        'instance value ("Bogus") not found in enum'
    )
    assert post(filenames=[{"filename": "x", "parts_number": 1}], params={"creator": "ghost"}) == {
        "statusCode": 400,
        "headers": HEADERS,
        "error": "user has no permissions to create a model",
    }
    put = lambda **body: legacy.put("/checkpoint", json=body).json()  # noqa: E731
    assert put(checkpoint_id="nope", status="Active", multi_parts_tags={}) == {
        "statusCode": 500,
        "headers": HEADERS,
        "error": "checkpoint not found with id nope",
    }
    some = legacy_upload(legacy, "other.safetensors", model_file_bytes(salt="other"))
    assert put(checkpoint_id=some["id"], status="Bogus", multi_parts_tags={}) == {
        "statusCode": 500,
        "headers": HEADERS,
        "msg": "'Bogus'",
    }


def test_upload_checkpoint_imports_from_urls_and_waits(legacy, file_server):
    body = {
        "checkpointType": "Lora",
        "modelUrl": [f"{file_server.url}/tiny.safetensors"],
        "params": {"message": "m", "creator": "api"},
    }
    answer = legacy.post("/upload_checkpoint", json=body).json()
    assert answer["statusCode"] == 200 and answer["headers"] == HEADERS
    assert answer["checkpoint"]["status"] == "Active" and answer["checkpoint"]["type"] == "Lora"
    assert legacy.get("/inference/get-lora-list").json() == ["tiny.safetensors"]
    wrong = legacy.post("/upload_checkpoint", json={**body, "checkpointType": "Controlnet"}).json()
    assert wrong["error"] == (
        "please choose the right type from :'Stable-diffusion', 'embeddings', 'Lora', "
        "'hypernetworks', 'Controlnet', 'VAE'"
    )
    assert legacy.post("/upload_checkpoint", json=body).json()["error"] == (
        "tiny.safetensors already exists, please use another or rename/delete exists"
    )


def test_training_era_routes_answer_empty_bodies_in_the_lambda_shape(legacy):
    # Details of each route: tests/legacy/test_training.py and test_datasets.py.
    for method, path, body in (
        ("POST", "/model", {"statusCode": 500, "error": "name is required: a model name without path separators"}),
        ("GET", "/legacy/models", {"statusCode": 200, "models": []}),
        ("PUT", "/train", {"statusCode": 200, "msg": "not implemented for train job status None"}),
        ("GET", "/legacy/datasets", {"statusCode": 200, "datasets": []}),
        (
            "GET",
            "/dataset/d1/data",
            {"statusCode": 500, "error": "path parameter /dataset/{dataset_name}/ are not found"},
        ),
        (
            "GET",
            "/legacy/d1/data",
            {"statusCode": 500, "error": "path parameter /dataset/{dataset_name}/ are not found"},
        ),
    ):
        response = legacy.call(method, path, json={})
        assert (response.status_code, response.json()) == (200, body), path


def test_mirror_list_keys_adds_the_legacy_key_next_to_data_only_when_set(make_client, legacy):
    legacy_create(legacy)
    plain = legacy.get("/prod/endpoints", user="api").json()
    assert "endpoints" not in plain and len(plain["data"]["endpoints"]) == 1

    mirrored = make_client(legacy_mirror_list_keys=True)
    legacy_create(mirrored)
    for path, key in (
        ("/prod/endpoints", "endpoints"),
        ("/checkpoints", "checkpoints"),
        ("/prod/datasets", "datasets"),
    ):
        answer = mirrored.get(path, user="api")
        body = answer.json()
        assert answer.status_code == 200 and body[key] == body["data"][key], path
        assert int(answer.headers["content-length"]) == len(answer.content)
    assert len(mirrored.get("/prod/endpoints", user="api").json()["endpoints"]) == 2  # the same database as above
    assert "endpoints" not in mirrored.get("/prod/endpoints", user="nobody").json()  # an error stays as it was
