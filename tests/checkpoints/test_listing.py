"""`GET /checkpoints`: paging, filters and visibility with several users and roles (§6.7, §12.3)."""

from __future__ import annotations

from tests.api.test_roles import make_role, make_user
from tests.checkpoints.conftest import upload_file
from tests.support.model_files import model_file_bytes


def names(esd, user="api", **params):
    response = esd.get("/prod/checkpoints", user=user, params=params)
    assert response.status_code == 200, response.json()
    return [c["name"][0] for c in response.json()["data"]["checkpoints"]]


def test_paging_counts_pages_exactly(esd):
    for i in range(5):
        upload_file(esd, f"m{i}.safetensors", model_file_bytes("lora", salt=str(i)), parts=1)
    data = esd.get("/prod/checkpoints", user="api", params={"per_page": 2, "page": 3}).json()["data"]
    assert (data["page"], data["per_page"], data["pages"], data["total"]) == (3, 2, 3, 5)
    assert [c["name"][0] for c in data["checkpoints"]] == ["m0.safetensors"]  # newest first
    full = esd.get("/prod/checkpoints", user="api", params={"per_page": 5}).json()["data"]
    assert full["pages"] == 1
    assert names(esd, per_page=5) == [f"m{i}.safetensors" for i in reversed(range(5))]


def test_empty_listing(esd):
    data = esd.get("/prod/checkpoints", user="api").json()["data"]
    assert (data["pages"], data["total"], data["checkpoints"]) == (0, 0, [])


def test_status_and_type_filters_are_repeatable_parameters(esd):
    upload_file(esd, "l.safetensors", model_file_bytes("lora"), parts=1, checkpoint_type="Lora")
    upload_file(esd, "v.safetensors", model_file_bytes("vae", "unknown"), parts=1, checkpoint_type="VAE")
    esd.post(
        "/prod/checkpoints",
        user="api",
        json={"checkpoint_type": "Lora", "params": {}, "filenames": [{"filename": "i.safetensors", "parts_number": 1}]},
    )
    assert set(names(esd, types=["Lora", "VAE"], status=["Active"])) == {"l.safetensors", "v.safetensors"}
    assert names(esd, types="VAE") == ["v.safetensors"]
    assert names(esd, status="Initial") == ["i.safetensors"]
    item = esd.get("/prod/checkpoints", user="api", params={"types": "VAE"}).json()["data"]["checkpoints"][0]
    assert set(item) >= {"id", "s3Location", "type", "status", "name", "created", "params", "allowed_roles_or_users"}
    assert isinstance(item["created"], str) and float(item["created"]) > 0


def test_visibility_follows_owner_roles(esd):
    make_role(esd, "artists", ["checkpoint:all"])
    make_role(esd, "viewers", ["checkpoint:list"])
    make_user(esd, "ann", ["artists"])
    make_user(esd, "vic", ["viewers"])
    upload_file(esd, "admin.safetensors", model_file_bytes("lora", salt="a"), parts=1)  # owned by IT Operator
    upload_file(esd, "ann.safetensors", model_file_bytes("lora", salt="b"), parts=1, user="ann")  # owned by artists
    # no username query: R = {"*"}: only ownerless or '*'-owned ones, unless user:all
    assert names(esd, user="vic") == []
    assert set(names(esd, user="api")) == {"admin.safetensors", "ann.safetensors"}  # user:all
    # with username: that user's roles
    assert names(esd, user="ann", username="ann") == ["ann.safetensors"]
    assert names(esd, user="vic", username="ann") == ["ann.safetensors"]
    assert names(esd, user="api", roles="artists") == ["ann.safetensors"]
    unknown = esd.get("/prod/checkpoints", user="ann", params={"username": "ghost"})
    assert unknown.json() == {"statusCode": 400, "message": 'user: "ghost" not exist'}


def test_roles_created_by_the_requester_make_checkpoints_visible(esd):
    make_role(esd, "makers", ["checkpoint:list", "role:create"])
    make_user(esd, "mia", ["makers"])
    make_role(esd, "teamx", ["checkpoint:list"], user="mia")
    make_role(esd, "uploaders", ["checkpoint:create"])
    make_user(esd, "tex", ["teamx", "uploaders"])
    upload_file(esd, "teamx.safetensors", model_file_bytes("lora", salt="t"), parts=1, user="tex")
    assert names(esd, user="mia") == ["teamx.safetensors"]


def test_listing_needs_permission(esd):
    make_role(esd, "nothing", ["train:all"])
    make_user(esd, "nat", ["nothing"])
    response = esd.get("/prod/checkpoints", user="nat")
    assert response.status_code == 403
    assert response.json()["message"] == "User nat has no permissions: ['checkpoint:all', 'checkpoint:list']"
    assert esd.get("/prod/checkpoints").status_code == 401
    bad_page = esd.get("/prod/checkpoints", user="api", params={"page": "x"})
    assert bad_page.status_code == 400 and "page" in bad_page.json()["message"]


def test_a_completed_upload_lists_its_size_and_hash(esd):
    data = model_file_bytes("lora", salt="size")
    upload_file(esd, "sized.safetensors", data, parts=2)
    esd.post(
        "/prod/checkpoints",
        user="api",
        json={
            "checkpoint_type": "Lora",
            "params": {},
            "filenames": [{"filename": "open.safetensors", "parts_number": 1}],
        },
    )
    listed = esd.get("/prod/checkpoints", user="api", params={"per_page": 1, "page": 2}).json()["data"]
    assert (listed["total"], listed["pages"]) == (2, 2)
    item = listed["checkpoints"][0]
    assert item["name"] == ["sized.safetensors"] and item["size"] == len(data) and len(item["hash"]) == 64
    newest = esd.get("/prod/checkpoints", user="api", params={"per_page": 1}).json()["data"]["checkpoints"][0]
    assert newest["name"] == ["open.safetensors"] and newest["size"] is None  # no content yet
