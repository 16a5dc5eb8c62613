"""Strict mode: every 1.5.0 route family obeys the ownership policy (docs/decisions.md, "Ownership in strict
mode"). alice and carol share the role team-a, bob has team-b; root is an administrator."""

from __future__ import annotations

import json
import time

from openesd.metadata.models import Training
from tests.auth.conftest import Member, Team, lora_file, sign_in
from tests.checkpoints.conftest import put_part
from tests.support.esd_jobs import endpoint_body

PAYLOAD = {"prompt": "a cat", "steps": 1}


def live_endpoint(member: Member, role: str) -> str:
    answer = member.post("/prod/endpoints", json=endpoint_body(endpoint_name=role, assign_to_roles=[role]))
    assert answer.status_code == 202, answer.json()
    return answer.json()["data"]["endpoint_name"]


def new_job(member: Member, endpoint: str) -> dict:
    answer = member.post(
        "/prod/inferences",
        json={
            "task_type": "txt2img",
            "inference_type": "Async",
            "models": {"Lora": ["a.safetensors"]},
            "sagemaker_endpoint_name": endpoint,
        },
    )
    assert answer.status_code == 201, answer.json()
    return answer.json()["data"]["inference"]


def jobs_seen(member: Member) -> set[str]:
    answer = member.get("/prod/inferences", params={"limit": 100})
    assert answer.status_code == 200, answer.json()
    return {j["InferenceJobId"] for j in answer.json()["data"]["inferences"]}


def checkpoints_seen(member: Member) -> set[str]:
    return {c["id"] for c in member.get("/prod/checkpoints", params={"per_page": 100}).json()["data"]["checkpoints"]}


def test_a_job_is_its_creators_alone(team: Team):
    team.alice.upload("a.safetensors", lora_file())
    job = new_job(team.alice, live_endpoint(team.alice, "team-a"))
    job_id = job["id"]
    for other in (team.bob, team.carol):  # a job is shared with nobody, not even the creator's role
        assert other.get(f"/prod/inferences/{job_id}").status_code == 404
        assert job_id not in jobs_seen(other)
        assert jobs_seen(other) == set()
        started = other.put(f"/prod/inferences/{job_id}/start")
        assert (started.status_code, started.json()["message"]) == (400, f"InferenceJobId {job_id} not found")
        assert other.delete("/prod/inferences", json={"inference_id_list": [job_id]}).status_code == 204
    assert team.alice.get(f"/prod/inferences/{job_id}").status_code == 200  # still there, never started
    assert team.esd.engine.submitted == []
    assert jobs_seen(team.alice) == {job_id} == jobs_seen(team.root)
    assert team.root.get(f"/prod/inferences/{job_id}").status_code == 200


def test_a_member_who_may_only_create_follows_their_own_jobs_and_no_one_elses(team: Team):
    team.alice.upload("a.safetensors", lora_file())
    endpoint = live_endpoint(team.alice, "team-a")
    alices = new_job(team.alice, endpoint)["id"]
    creators = {"role_name": "creators", "permissions": ["inference:create", "checkpoint:list"]}
    assert team.root.post("/prod/roles", json=creators).status_code == 201
    maker = {"username": "dan", "password": "dan-pw", "roles": ["creators", "team-a"]}
    assert team.root.post("/prod/users", json=maker).status_code == 201
    dan = sign_in(team.esd, "dan", "dan-pw")
    mine = new_job(dan, endpoint)["id"]
    for path in (f"/prod/inferences/{mine}", f"/legacy/inference/get-inference-job?jobID={mine}"):
        assert dan.get(path).status_code == 200, path
    hidden = dan.get(f"/prod/inferences/{alices}")
    assert (hidden.status_code, hidden.json()["message"]) == (404, f"inference with id {alices} not found")
    readers = {"role_name": "readers", "permissions": ["checkpoint:list"]}  # no inference permission at all
    assert team.root.post("/prod/roles", json=readers).status_code == 201
    assert (
        team.root.post("/prod/users", json={"username": "eve", "password": "eve-pw", "roles": ["readers"]}).status_code
        == 201
    )
    eve = sign_in(team.esd, "eve", "eve-pw")
    refused = eve.get(f"/prod/inferences/{mine}")
    assert refused.status_code == 403 and "inference:create" in refused.json()["message"]


def test_the_admin_may_delete_anyones_job(team: Team):
    team.alice.upload("a.safetensors", lora_file())
    job_id = new_job(team.alice, live_endpoint(team.alice, "team-a"))["id"]
    assert team.root.delete("/prod/inferences", json={"inference_id_list": [job_id]}).status_code == 204
    assert team.alice.get(f"/prod/inferences/{job_id}").status_code == 404


def test_no_listing_or_read_hands_out_an_upload_url(team: Team):
    team.alice.upload("a.safetensors", lora_file())
    job = new_job(team.alice, live_endpoint(team.alice, "team-a"))
    url = job["api_params_s3_upload_url"]
    listed = team.root.get("/prod/inferences", params={"limit": 100}).json()["data"]["inferences"]
    read = team.alice.get(f"/prod/inferences/{job['id']}").json()["data"]
    for shown in (listed, read):
        assert url not in json.dumps(shown) and "input_body_presign_url" not in json.dumps(shown)


def test_a_started_jobs_payload_cannot_be_rewritten(team: Team):
    team.alice.upload("a.safetensors", lora_file())
    job = new_job(team.alice, live_endpoint(team.alice, "team-a"))
    url = job["api_params_s3_upload_url"]
    assert put_part(team.esd, url, json.dumps(PAYLOAD).encode()).status_code == 200
    assert team.alice.put(f"/prod/inferences/{job['id']}/start").status_code == 202
    put_part(team.esd, url, json.dumps({**PAYLOAD, "prompt": "something else"}).encode())
    spec = team.esd.engine.submitted[-1]
    ran = json.loads(team.esd.http.app.state.store.get_bytes(spec.param_key))
    assert ran["prompt"] == "a cat"  # what the worker reads is what was there at the start


def test_checkpoints_are_seen_by_the_role_and_changed_by_the_creator(team: Team):
    checkpoint_id = team.alice.upload("a.safetensors", lora_file())["id"]
    assert checkpoint_id in checkpoints_seen(team.carol) and checkpoint_id in checkpoints_seen(team.root)
    assert checkpoint_id not in checkpoints_seen(team.bob)
    # bob: as if it did not exist
    assert team.bob.put(f"/prod/checkpoints/{checkpoint_id}", json={"name": "b_renamed"}).status_code == 404
    assert team.bob.delete("/prod/checkpoints", json={"checkpoint_id_list": [checkpoint_id]}).status_code == 204
    # carol sees it (and may use it) but may not change it
    for answer in (
        team.carol.put(f"/prod/checkpoints/{checkpoint_id}", json={"name": "c_renamed"}),
        team.carol.put(
            f"/prod/checkpoints/{checkpoint_id}", json={"status": "Disabled", "multi_parts_tags": {"x": []}}
        ),
        team.carol.delete("/prod/checkpoints", json={"checkpoint_id_list": [checkpoint_id]}),
    ):
        assert answer.status_code == 403, answer.json()
        assert "belongs to alice" in answer.json()["message"]
    listed = team.alice.get("/prod/checkpoints").json()["data"]["checkpoints"]
    assert [(c["name"], c["status"]) for c in listed] == [(["a.safetensors"], "Active")]
    assert team.alice.put(f"/prod/checkpoints/{checkpoint_id}", json={"name": "b_renamed"}).status_code == 202
    assert team.root.delete("/prod/checkpoints", json={"checkpoint_id_list": [checkpoint_id]}).status_code == 204
    assert checkpoints_seen(team.alice) == set()


def test_a_checkpoint_listing_page_follows_the_creator_and_the_owner_list(team: Team):
    """The page is read in SQL: the creator sees their upload after leaving the role it is shared with, the
    role's members see it, others do not, and counts and pages are of what each one sees."""
    first = team.alice.upload("first.safetensors", lora_file())["id"]
    second = team.alice.upload("second.safetensors", lora_file())["id"]
    moved = team.root.post("/prod/users", json={"username": "alice", "password": "alice-pw", "roles": ["team-b"]})
    assert moved.status_code == 201, moved.json()
    page = team.alice.get("/prod/checkpoints", params={"per_page": 1, "page": 2}).json()["data"]
    assert (page["total"], page["pages"], [c["id"] for c in page["checkpoints"]]) == (2, 2, [first])
    assert checkpoints_seen(team.carol) == {first, second}  # owner list [team-a]
    assert checkpoints_seen(team.bob) == set()  # team-b now holds alice, not the records
    assert team.bob.get("/prod/checkpoints", params={"roles": "team-a"}).json()["data"]["total"] == 0
    assert team.root.get("/prod/checkpoints", params={"roles": "team-b"}).json()["data"]["total"] == 0
    assert team.root.get("/prod/checkpoints", params={"roles": "team-a"}).json()["data"]["total"] == 2


def test_a_job_can_only_use_models_its_creator_may_see(team: Team):
    team.alice.upload("a.safetensors", lora_file())
    endpoint = live_endpoint(team.bob, "team-b")
    answer = team.bob.post(
        "/prod/inferences",
        json={
            "task_type": "txt2img",
            "inference_type": "Async",
            "models": {"Lora": ["a.safetensors"]},
            "sagemaker_endpoint_name": endpoint,
        },
    )
    assert answer.status_code == 400
    assert answer.json()["message"] == "checkpoint with name a.safetensors, type Lora is not found"


def test_an_endpoint_is_used_by_its_roles_and_deleted_by_its_creator(team: Team):
    name = live_endpoint(team.alice, "team-a")
    seen = {
        m.name: [e["endpoint_name"] for e in m.get("/prod/endpoints").json()["data"]["endpoints"]]
        for m in (team.alice, team.carol, team.bob)
    }
    assert seen == {"alice": [name], "carol": [name], "bob": []}
    team.alice.upload("a.safetensors", lora_file())
    bobs = team.bob.post(
        "/prod/inferences",
        json={"task_type": "txt2img", "inference_type": "Async", "models": {}, "sagemaker_endpoint_name": name},
    )
    assert (bobs.status_code, bobs.json()["message"]) == (400, f"sagemaker endpoint with name {name} is not found")
    assert team.bob.delete("/prod/endpoints", json={"endpoint_name_list": [name]}).status_code == 204
    refused = team.carol.delete("/prod/endpoints", json={"endpoint_name_list": [name]})
    assert refused.status_code == 403 and "belongs to alice" in refused.json()["message"]
    assert [e["endpoint_name"] for e in team.root.get("/prod/endpoints").json()["data"]["endpoints"]] == [name]
    assert team.alice.delete("/prod/endpoints", json={"endpoint_name_list": [name]}).status_code == 204
    assert team.root.get("/prod/endpoints").json()["data"]["endpoints"] == []


def dataset(member: Member, name: str = "cats"):
    return member.post(
        "/prod/datasets",
        json={
            "dataset_name": name,
            "content": [{"filename": "1.png", "name": "1.png", "type": "image", "params": {}}],
            "params": {},
            "creator": member.name,
        },
    )


def test_a_dataset_name_is_never_taken_over(team: Team):
    assert dataset(team.alice).status_code == 201
    for other in (team.bob, team.carol):
        answer = dataset(other)
        assert answer.status_code == 400
        assert (
            answer.json()["message"] == "dataset cats already exists and belongs to another user: choose another name"
        )
    assert dataset(team.alice).status_code == 201  # the creator may add to it, as in ESD
    assert team.bob.get("/prod/datasets/cats").status_code == 404
    assert team.bob.put("/prod/datasets/cats", json={"status": "Disabled"}).status_code == 404
    assert team.bob.get("/prod/datasets").json()["data"] == {"datasets": []}
    assert team.bob.delete("/prod/datasets", json={"dataset_name_list": ["cats"]}).status_code == 204
    assert team.carol.get("/prod/datasets/cats").status_code == 200
    for answer in (
        team.carol.put("/prod/datasets/cats", json={"status": "Disabled"}),
        team.carol.delete("/prod/datasets", json={"dataset_name_list": ["cats"]}),
    ):
        assert answer.status_code == 403 and "belongs to alice" in answer.json()["message"]
    assert team.alice.get("/prod/datasets/cats").json()["data"]["status"] == "Initialed"
    assert team.root.delete("/prod/datasets", json={"dataset_name_list": ["cats"]}).status_code == 204
    assert team.alice.get("/prod/datasets/cats").status_code == 404


def alices_training(team: Team) -> str:
    """A running training of alice's, written as the service writes one (no trainer process needed)."""
    with team.esd.http.app.state.sessionmaker.begin() as session:
        session.add(
            Training(
                id="t-1",
                created=time.time(),
                job_status="Training",
                checkpoint_id="t-1",
                instance_type="cpu",
                sagemaker_train_name="kohya-t-1",
                params={"creator": "alice"},
                allowed_roles_or_users=["alice"],
            )
        )
    return "t-1"


def test_a_training_is_its_creators_alone(team: Team):
    training_id = alices_training(team)
    for other in (team.bob, team.carol):
        assert other.get(f"/prod/trainings/{training_id}").status_code == 404
        assert other.put(f"/prod/trainings/{training_id}/stop").status_code == 404
        assert other.get("/prod/trainings").json()["data"] == {"trainings": []}
        assert other.delete("/prod/trainings", json={"training_id_list": [training_id]}).status_code == 204
    assert team.alice.get(f"/prod/trainings/{training_id}").json()["data"]["job_status"] == "Training"
    assert [t["id"] for t in team.root.get("/prod/trainings").json()["data"]["trainings"]] == [training_id]
    assert team.esd.engine.stopped_trainings == []
    assert team.root.put(f"/prod/trainings/{training_id}/stop").status_code == 200
    assert team.esd.engine.stopped_trainings == [training_id]
    assert team.alice.delete("/prod/trainings", json={"training_id_list": [training_id]}).status_code == 204
    assert team.alice.get(f"/prod/trainings/{training_id}").status_code == 404


def test_every_route_needs_a_token(team: Team):
    routes = [
        ("GET", "/prod/inferences"),
        ("GET", "/prod/inferences/x"),
        ("PUT", "/prod/inferences/x/start"),
        ("PUT", "/prod/inferences/x/cancel"),
        ("DELETE", "/prod/inferences"),
        ("GET", "/prod/checkpoints"),
        ("PUT", "/prod/checkpoints/x"),
        ("DELETE", "/prod/checkpoints"),
        ("GET", "/prod/endpoints"),
        ("DELETE", "/prod/endpoints"),
        ("GET", "/prod/datasets"),
        ("GET", "/prod/datasets/x"),
        ("PUT", "/prod/datasets/x"),
        ("DELETE", "/prod/datasets"),
        ("GET", "/prod/trainings"),
        ("GET", "/prod/trainings/x"),
        ("PUT", "/prod/trainings/x/stop"),
        ("DELETE", "/prod/trainings"),
        ("GET", "/prod/users"),
        ("GET", "/prod/roles"),
        ("DELETE", "/prod/roles"),
    ]
    bodies = {
        "/prod/inferences": {"inference_id_list": ["x"]},
        "/prod/checkpoints": {"checkpoint_id_list": ["x"]},
        "/prod/endpoints": {"endpoint_name_list": ["x"]},
        "/prod/datasets": {"dataset_name_list": ["x"]},
        "/prod/trainings": {"training_id_list": ["x"]},
        "/prod/roles": {"role_name_list": ["x"]},
        "/prod/checkpoints/x": {"name": "y"},
        "/prod/datasets/x": {"status": "Enabled"},
    }
    for method, path in routes:
        body = bodies.get(path) if method in ("PUT", "DELETE") else None
        answer = team.esd.call(method, path, user="alice", json=body)
        assert answer.status_code == 401, (method, path, answer.status_code, answer.text)
