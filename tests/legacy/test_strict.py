"""Strict mode on the legacy routes (issue 13): a token on every route, the 1.5.0 permission of the operation
each maps to, and the ownership policy (auth/access.py): two ordinary users, each with a role of the usual
team permissions, and an administrator."""

from __future__ import annotations

import json

import pytest

from openesd.api.deps import get_engine
from tests.checkpoints.conftest import put_part
from tests.legacy.conftest import RecordingEngine, set_endpoint_status
from tests.support.model_files import model_file_bytes

TEAM = ["train:all", "checkpoint:all", "inference:all", "sagemaker_endpoint:all"]
PRESIGN = "/inference/generate-s3-presigned-url-for-uploading"
UNAUTHORIZED = (401, {"message": "Unauthorized"})


class Person:
    """One user's legacy client: the API key and that user's personal token."""

    def __init__(self, client, name: str):
        self.client, self.name = client, name
        login = client.post("/prod/tokens", json={"username": name, "password": "pw"})
        assert login.status_code == 201, login.json()
        self.headers = {"Authorization": f"Bearer {login.json()['data']['secret']}"}

    def call(self, method: str, path: str, **kw):
        return self.client.call(method, path, headers=self.headers, **kw)

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, **kw):
        return self.call("POST", path, **kw)

    def put(self, path, **kw):
        return self.call("PUT", path, **kw)


@pytest.fixture
def strict(make_client):
    client = make_client(auth_mode="strict", legacy_upload_wait_seconds=10)
    client.engine = RecordingEngine()
    client.http.app.dependency_overrides[get_engine] = lambda: client.engine
    boot = client.post("/prod/users", json={"username": "root", "password": "pw", "initial": True})
    assert boot.status_code == 201, boot.json()
    return client


@pytest.fixture
def people(strict):
    """(alice, bob, root): alice and bob each hold a team role of their own, root is an administrator."""
    root = Person(strict, "root")
    for name, permissions in (("role-a", TEAM), ("role-b", TEAM), ("lister", ["inference:list"])):
        assert root.post("/prod/roles", json={"role_name": name, "permissions": permissions}).status_code == 201
    for name, role in (("alice", "role-a"), ("bob", "role-b"), ("carol", "lister")):
        made = root.post("/prod/users", json={"username": name, "password": "pw", "roles": [role]})
        assert made.status_code == 201, made.json()
    return Person(strict, "alice"), Person(strict, "bob"), root


def upload_checkpoint(person: Person, name: str, kind: str = "Stable-diffusion", data: bytes | None = None) -> str:
    """The legacy upload flow (`POST` then `PUT /checkpoint`); the checkpoint's id."""
    created = person.post(
        "/checkpoint",
        json={
            "checkpoint_type": kind,
            "params": {"message": "m"},
            "filenames": [{"filename": name, "parts_number": 1}],
        },
    ).json()
    assert created["statusCode"] == 200, created
    checkpoint_id = created["checkpoint"]["id"]
    body = data or model_file_bytes("lora" if kind == "Lora" else "checkpoint", salt=name)
    etag = put_part(person.client, created["s3PresignUrl"][name][0], body).headers["ETag"]
    done = person.put(
        "/checkpoint",
        json={
            "checkpoint_id": checkpoint_id,
            "status": "Active",
            "multi_parts_tags": {name: [{"ETag": etag, "PartNumber": 1}]},
        },
    ).json()
    assert done["statusCode"] == 200, done
    return checkpoint_id


def endpoint_of(person: Person, roles: list[str]) -> str:
    created = person.post(
        "/inference/deploy-sagemaker-endpoint",
        json={"instance_type": "cpu", "initial_instance_count": "1", "assign_to_roles": roles},
    ).json()
    assert created["statusCode"] == 200, created
    name = created["data"]["endpoint_name"]
    set_endpoint_status(person.client, name, "InService")
    return name


def prepared_job(person: Person, endpoint: str, model: str) -> dict:
    body = person.post(
        "/inference/v2",
        json={
            "task_type": "txt2img",
            "models": {"Stable-diffusion": [model]},
            "sagemaker_endpoint_name": endpoint,
            "filters": {},
        },
    ).json()
    assert body["statusCode"] == 200, body
    return body["inference"]


# --- identity ------------------------------------------------------------------------------------

ROUTES = [
    ("GET", "/inference/list-inference-jobs", None),
    ("GET", "/inference/get-inference-job?jobID=x", None),
    ("GET", "/inference/get-inference-job-image-output?jobID=x", None),
    ("GET", "/inference/get-inference-job-param-output?jobID=x", None),
    ("GET", f"{PRESIGN}?key=config/aigc.json", None),
    ("GET", "/inference/get-texual-inversion-list", None),
    ("GET", "/inference/get-lora-list", None),
    ("GET", "/inference/get-hypernetwork-list", None),
    ("GET", "/inference/get-controlnet-model-list", None),
    ("POST", "/inference/v2", {"task_type": "txt2img", "models": {}, "filters": {}}),
    ("POST", "/inference/v2", {"task_type": "txt2img", "models": {"VAE": ["x"]}, "sagemaker_endpoint_name": "e"}),
    (
        "POST",
        "/inference-api/inference",
        {"task_type": "txt2img", "models": {"VAE": ["x"]}, "sagemaker_endpoint_name": "e"},
    ),
    ("PUT", "/inference/v2/x/run", {}),
    ("POST", "/inference/deploy-sagemaker-endpoint", {"instance_type": "cpu", "initial_instance_count": "1"}),
    ("POST", "/inference/delete-sagemaker-endpoint", {"delete_endpoint_list": ["x"]}),
    ("GET", "/inference/list-endpoint-deployment-jobs", None),
    ("GET", "/inference/get-endpoint-deployment-job?jobID=x", None),
    ("POST", "/legacy/endpoints", {"instance_type": "cpu", "initial_instance_count": "1"}),
    ("POST", "/endpoints", {"instance_type": "cpu", "initial_instance_count": "1"}),  # body dispatch
    ("DELETE", "/legacy/endpoints", {"delete_endpoint_list": ["x"]}),
    ("GET", "/legacy/endpoints", None),
    (
        "POST",
        "/checkpoint",
        {"checkpoint_type": "Lora", "params": {}, "filenames": [{"filename": "a.safetensors", "parts_number": 1}]},
    ),
    ("PUT", "/checkpoint", {"checkpoint_id": "x", "status": "Active"}),
    ("POST", "/upload_checkpoint", {"checkpointType": "Lora", "modelUrl": ["http://x/a.safetensors"], "params": {}}),
    ("GET", "/legacy/checkpoints", None),
    ("POST", "/inference/run-model-merge", {"primary_model_name": "a", "secondary_model_name": "b"}),
    ("POST", "/model", {"name": "m", "model_type": "Stable-diffusion", "params": {}, "checkpoint_id": "x"}),
    ("PUT", "/model", {"model_id": "x", "status": "Creating"}),
    ("GET", "/models", None),
    ("POST", "/train", {"train_type": "Stable-diffusion", "model_id": "x", "params": {}}),
    ("POST", "/train-api/train", {"train_type": "Stable-diffusion", "model_id": "x", "params": {}}),
    ("PUT", "/train", {"train_job_id": "x", "status": "Training"}),
    ("GET", "/trains", None),
    ("POST", "/dataset", {"dataset_name": "d", "content": [{"filename": "a.png", "name": "a", "type": "image"}]}),
    ("PUT", "/dataset", {"dataset_name": "d", "status": "Enabled"}),
    ("GET", "/legacy/datasets", None),
    ("GET", "/dataset/d/data", None),
    ("GET", "/legacy/d/data", None),
]


def test_every_legacy_route_answers_401_without_a_token(strict):
    """ESD answered these with the API key alone; a `username` header or a hex name proves nothing."""
    for method, path, body in ROUTES:
        for headers in ({}, {"username": "root"}, {"Authorization": "Bearer 726F6F74"}):
            response = strict.call(method, path, json=body, headers=headers)
            assert (response.status_code, response.json()) == UNAUTHORIZED, (method, path, headers)
    # like `GET /ping`, the connectivity mock reveals nothing and needs only the key
    assert strict.get("/inference/test-connection").json() == {"message": "Success"}


def test_routes_esd_left_without_identity_need_the_1_5_permission(people):
    carol = Person(people[0].client, "carol")  # holds inference:list only
    assert carol.get("/inference/list-inference-jobs").json() == []
    # Reading one job is open to whoever may list or create jobs (their own only): the unknown id's legacy answer.
    unknown = carol.get("/inference/get-inference-job", params={"jobID": "x"})
    assert (unknown.status_code, unknown.json()) == (500, {"detail": "There is no inference job info item for id: x"})
    assert carol.put("/inference/v2/x/run").json() == {
        "statusCode": "403",
        "error": "User carol has no permissions: ['inference:all']",
    }
    listing = carol.get("/inference/list-endpoint-deployment-jobs")
    assert listing.status_code == 403 and "sagemaker_endpoint:list" in listing.json()["detail"]
    assert carol.put("/checkpoint", json={"checkpoint_id": "x", "status": "Active"}).json()["statusCode"] == 403
    for path, body in (
        ("/model", {"model_id": "x", "status": "Creating"}),
        ("/train", {"train_job_id": "x", "status": "Training"}),
        ("/dataset", {"dataset_name": "d", "status": "Enabled"}),
    ):
        assert carol.put(path, json=body).json() == {
            "statusCode": 403,
            "error": "User carol has no permissions: ['train:all']",
        }, path
    assert carol.get("/inference/get-lora-list").status_code == 403
    assert carol.get(PRESIGN, params={"key": "txt2img/infer_v2/x/api_param.json"}).status_code == 403


# --- inference jobs ------------------------------------------------------------------------------


def test_inference_jobs_are_their_creators(people):
    alice, bob, root = people
    upload_checkpoint(alice, "a.safetensors")
    endpoint = endpoint_of(alice, ["role-a"])
    job = prepared_job(alice, endpoint, "a.safetensors")
    key = f"txt2img/infer_v2/{job['id']}/api_param.json"

    # bob: the job, the model and the endpoint do not exist for him
    assert bob.get("/inference/list-inference-jobs").json() == []
    hidden = bob.get("/inference/get-inference-job", params={"jobID": job["id"]})
    assert (hidden.status_code, hidden.json()) == (
        500,
        {"detail": f"There is no inference job info item for id: {job['id']}"},
    )
    for route in ("image", "param"):
        assert bob.get(f"/inference/get-inference-job-{route}-output", params={"jobID": job["id"]}).json() == []
    assert bob.put(f"/inference/v2/{job['id']}/run").json() == {
        "statusCode": "500",
        "error": f"InferenceJobId {job['id']} not found",
    }
    signed = bob.get(PRESIGN, params={"key": key})
    assert signed.status_code == 400 and signed.json()["detail"].startswith(f"key {key} is not an upload awaited")
    theirs = bob.post(
        "/inference/v2",
        json={
            "task_type": "txt2img",
            "models": {"Stable-diffusion": ["a.safetensors"]},
            "sagemaker_endpoint_name": endpoint,
            "filters": {},
        },
    ).json()
    assert theirs == {"statusCode": 500, "errMsg": f"sagemaker endpoint with name {endpoint} is not found"}
    one_call = bob.post(
        "/inference-api/inference",
        json={
            "task_type": "txt2img",
            "models": {"Stable-diffusion": ["a.safetensors"]},
            "sagemaker_endpoint_name": endpoint,
        },
    )
    assert one_call.json()["status"] == 500 and one_call.json()["err"].endswith(
        f"sagemaker endpoint with name {endpoint} is not found"
    )
    assert bob.get("/inference/get-lora-list").json() == []

    # alice uploads her payload and runs her job; then the payload is sealed
    url = alice.get(PRESIGN, params={"key": key}).json()
    assert put_part(alice.client, url, json.dumps({"prompt": "x"}).encode()).status_code == 200
    run = alice.put(f"/inference/v2/{job['id']}/run").json()
    assert run["statusCode"] == 200 and run["inference"]["status"] == "inprogress"
    again = alice.get(PRESIGN, params={"key": key})
    assert again.status_code == 400
    assert again.json()["detail"] == (
        f"inference job {job['id']} has started (status inprogress): its api_param.json can no longer be uploaded"
    )
    assert [j["InferenceJobId"] for j in alice.get("/inference/list-inference-jobs").json()] == [job["id"]]

    # the administrator sees everyone's jobs
    assert [j["InferenceJobId"] for j in root.get("/inference/list-inference-jobs").json()] == [job["id"]]
    assert root.get("/inference/get-inference-job", params={"jobID": job["id"]}).json()["status"] == "inprogress"


def test_a_shared_job_is_readable_but_only_its_creator_starts_it(people):
    alice, bob, root = people
    upload_checkpoint(alice, "a.safetensors")
    job = prepared_job(alice, endpoint_of(alice, ["*"]), "a.safetensors")
    # share the job with bob's role, as an ESD owner list may
    from openesd.inferences.repository import InferenceRepository

    with alice.client.http.app.state.sessionmaker.begin() as session:
        InferenceRepository(session).get(job["id"]).owner_group_or_role = ["alice", "role-b"]
    assert bob.get("/inference/get-inference-job", params={"jobID": job["id"]}).json()["InferenceJobId"] == job["id"]
    refused = bob.put(f"/inference/v2/{job['id']}/run").json()
    assert refused["statusCode"] == "403" and "belongs to alice" in refused["error"]
    assert bob.get(PRESIGN, params={"key": f"txt2img/infer_v2/{job['id']}/api_param.json"}).status_code == 403
    assert root.put(f"/inference/v2/{job['id']}/run").json()["statusCode"] == 200


# --- endpoints -----------------------------------------------------------------------------------


def test_endpoints_are_listed_and_deleted_by_whom_the_policy_allows(people):
    alice, bob, root = people
    private = endpoint_of(alice, ["role-a"])
    shared = endpoint_of(alice, ["*"])
    job_id = root.get("/inference/list-endpoint-deployment-jobs").json()[0]["EndpointDeploymentJobId"]

    def names(person):
        return sorted(e["endpoint_name"] for e in person.get("/legacy/endpoints").json()["endpoints"])

    assert names(bob) == [shared] and names(alice) == names(root) == sorted([private, shared])
    assert [e["endpoint_name"] for e in bob.get("/inference/list-endpoint-deployment-jobs").json()] == [shared]
    private_id = next(
        e["EndpointDeploymentJobId"]
        for e in alice.get("/inference/list-endpoint-deployment-jobs").json()
        if e["endpoint_name"] == private
    )
    assert bob.get("/inference/get-endpoint-deployment-job", params={"jobID": private_id}).json() == {}
    assert (
        alice.get("/inference/get-endpoint-deployment-job", params={"jobID": private_id}).json()["endpoint_name"]
        == private
    )

    # a hidden endpoint is skipped as unknown; a visible one of someone else's refuses the whole request
    assert (
        bob.post("/inference/delete-sagemaker-endpoint", json={"delete_endpoint_list": [private]}).json()
        == "Endpoint delete completed"
    )
    refused = bob.call("DELETE", "/legacy/endpoints", json={"delete_endpoint_list": [shared]}).json()
    assert refused["statusCode"] == 403 and "belongs to alice" in refused["errMsg"]
    assert names(alice) == sorted([private, shared]) and bob.client.engine.undeployed == []
    assert (
        root.call("DELETE", "/legacy/endpoints", json={"delete_endpoint_list": [private, job_id]}).json()
        == "Endpoint deleted"
    )
    assert len(root.client.engine.undeployed) == 2


# --- checkpoints ---------------------------------------------------------------------------------


def test_checkpoints_are_hidden_and_kept_from_other_users(people):
    alice, bob, root = people
    checkpoint_id = upload_checkpoint(alice, "a-lora.safetensors", "Lora")
    assert alice.get("/inference/get-lora-list").json() == ["a-lora.safetensors"]
    assert bob.get("/inference/get-lora-list").json() == []
    assert root.get("/inference/get-lora-list").json() == ["a-lora.safetensors"]
    assert bob.get("/legacy/checkpoints").json() == {"statusCode": 200, "checkpoints": []}
    assert [c["id"] for c in root.get("/legacy/checkpoints").json()["checkpoints"]] == [checkpoint_id]
    disabled = bob.put("/checkpoint", json={"checkpoint_id": checkpoint_id, "status": "Disabled"}).json()
    assert disabled["statusCode"] == 500 and disabled["error"] == f"checkpoint not found with id {checkpoint_id}"
    assert [c["status"] for c in alice.get("/legacy/checkpoints").json()["checkpoints"]] == ["Active"]
    assert (
        root.put("/checkpoint", json={"checkpoint_id": checkpoint_id, "status": "Disabled"}).json()["statusCode"] == 200
    )


def test_a_merge_cannot_read_another_users_model(people):
    alice, bob, _ = people
    upload_checkpoint(alice, "a.safetensors")
    refused = bob.post(
        "/inference/run-model-merge", json={"primary_model_name": "a.safetensors", "interp_method": "No interpolation"}
    )
    assert (refused.status_code, refused.json()) == (
        400,
        {"detail": "checkpoint with name a.safetensors, type Stable-diffusion is not found"},
    )
    mine = alice.post(
        "/inference/run-model-merge",
        json={"primary_model_name": "a.safetensors", "interp_method": "No interpolation", "custom_name": "m"},
    )
    assert mine.status_code == 200 and mine.json()["status"] == "inprogress"


# --- presigned upload URLs -----------------------------------------------------------------------


def test_upload_urls_only_for_the_requesters_files_still_awaited(people):
    alice, bob, root = people
    created = alice.post(
        "/checkpoint",
        json={"checkpoint_type": "Lora", "params": {}, "filenames": [{"filename": "w.safetensors", "parts_number": 1}]},
    ).json()
    key = f"Lora/checkpoint/custom/{created['checkpoint']['id']}/w.safetensors"
    assert bob.get(PRESIGN, params={"key": key}).status_code == 400
    assert root.get(PRESIGN, params={"key": key}).status_code == 200
    url = alice.get(PRESIGN, params={"key": key}).json()
    assert put_part(alice.client, url, model_file_bytes("lora")).status_code == 200
    uploaded = alice.get(PRESIGN, params={"key": key}).json()["detail"]
    assert (
        uploaded == f"checkpoint {created['checkpoint']['id']} already has the file {key}: an uploaded file "
        "cannot be replaced"
    )

    completed_id = upload_checkpoint(alice, "done.safetensors")
    done_key = f"Stable-diffusion/checkpoint/custom/{completed_id}/done.safetensors"
    for person in (alice, bob, root):
        refused = person.get(PRESIGN, params={"key": done_key})
        assert refused.status_code == 400, person.name
    assert root.get(PRESIGN, params={"key": done_key}).json()["detail"] == (
        f"checkpoint {completed_id} is Active: its files can no longer be uploaded"
    )

    # the old WebUI's settings file is the deployment's: an administrator's
    assert root.get(PRESIGN, params={"key": "config/aigc.json"}).status_code == 200
    config = bob.get(PRESIGN, params={"key": "config/aigc.json"})
    assert config.status_code == 400 and "only an administrator" in config.json()["detail"]


# --- datasets ------------------------------------------------------------------------------------


def test_datasets_are_their_creators(people):
    alice, bob, root = people
    created = alice.post(
        "/dataset", json={"dataset_name": "faces", "content": [{"filename": "a.png", "name": "a", "type": "image"}]}
    ).json()
    assert created["statusCode"] == 200, created
    key = "dataset/faces/a.png"
    assert bob.get("/legacy/datasets").json() == {"statusCode": 200, "datasets": []}
    assert [d["datasetName"] for d in root.get("/legacy/datasets").json()["datasets"]] == ["faces"]
    for path in ("/dataset/faces/data", "/legacy/faces/data"):
        assert bob.get(path).json() == {
            "statusCode": 500,
            "error": "path parameter /dataset/{dataset_name}/ are not found",
        }, path
    assert alice.get("/dataset/faces/data").json()["statusCode"] == 200
    assert bob.put("/dataset", json={"dataset_name": "faces", "status": "Enabled"}).json() == {
        "statusCode": 404,
        "errorMsg": "dataset faces is not found",
    }
    taken = bob.post(
        "/dataset", json={"dataset_name": "faces", "content": [{"filename": "b.png", "name": "b", "type": "image"}]}
    ).json()
    assert taken["statusCode"] == 500 and "belongs to another user" in taken["error"]
    assert bob.get(PRESIGN, params={"key": key}).status_code == 400

    url = alice.get(PRESIGN, params={"key": key}).json()
    assert put_part(alice.client, url, b"\x89PNG").status_code == 200
    assert alice.get(PRESIGN, params={"key": key}).status_code == 400  # uploaded: not replaced
    assert root.put("/dataset", json={"dataset_name": "faces", "status": "Disabled"}).json()["statusCode"] == 200


# --- dreambooth models and trainings --------------------------------------------------------------


def test_models_and_trainings_are_their_creators(people):
    alice, bob, root = people
    base_id = upload_checkpoint(alice, "base.safetensors")
    model = {"name": "m", "model_type": "Stable-diffusion", "params": {}, "checkpoint_id": base_id}
    assert bob.post("/model", json=model).json() == {
        "statusCode": 500,
        "error": f"create model ckpt with id {base_id} is not found",
    }
    created = alice.post("/model", json=model).json()
    assert created["statusCode"] == 200, created
    model_id = created["job"]["id"]
    assert bob.get("/models").json() == {"statusCode": 200, "models": []}
    assert [m["id"] for m in root.get("/models").json()["models"]] == [model_id]
    assert bob.put("/model", json={"model_id": model_id, "status": "Creating"}).json() == {
        "statusCode": 200,
        "error": f"create model with id {model_id} is not found",
    }
    assert alice.put("/model", json={"model_id": model_id, "status": "Creating"}).json()["statusCode"] == 200

    train = {
        "train_type": "Stable-diffusion",
        "model_id": model_id,
        "params": {
            "training_params": {"data_tar_list": ["s3://bucket/dataset/faces"]},
            "config_params": {"use_lora": True},
        },
    }
    assert bob.post("/train", json=train).json() == {
        "statusCode": 500,
        "error": f"model with id {model_id} is not found",
    }
    started = alice.post("/train", json=train).json()
    assert started["statusCode"] == 200, started
    training_id = started["job"]["id"]
    assert bob.get("/trains").json() == {"statusCode": 200, "trainJobs": []}
    assert [t["id"] for t in root.get("/trains").json()["trainJobs"]] == [training_id]
    assert bob.put("/train", json={"train_job_id": training_id, "status": "Training"}).json() == {
        "statusCode": 500,
        "error": f"no such train job with id({training_id})",
    }
    assert [t["status"] for t in alice.get("/trains").json()["trainJobs"]] == ["Initial"]
