"""`/roles`: esd-api.md §4 and §12."""

from __future__ import annotations

ADMIN = ["train:all", "checkpoint:all", "inference:all", "sagemaker_endpoint:all", "user:all", "role:all"]


def make_user(esd, name, roles, creator="api"):
    response = esd.post("/prod/users", user=creator, json={"username": name, "password": "pw", "roles": roles})
    assert response.status_code == 201, response.json()


def make_role(esd, name, permissions, user="api"):
    response = esd.post("/prod/roles", user=user, json={"role_name": name, "permissions": permissions})
    assert response.status_code == 201, response.json()


def test_seeded_roles_listed_descending(esd):
    response = esd.get("/prod/roles", user="api")
    assert response.status_code == 200
    body = response.json()
    assert body["statusCode"] == 200 and body["message"] == "OK"
    data = body["data"]
    assert [r["role_name"] for r in data["roles"]] == ["byoc", "IT Operator"]
    assert data["roles"][1] == {"role_name": "IT Operator", "creator": "ESD", "permissions": ADMIN}
    assert data["previous_evaluated_key"] == "not_applicable"
    assert data["last_evaluated_key"] is None


def test_role_query_filters_by_exact_name(esd):
    assert [
        r["role_name"] for r in esd.get("/prod/roles", user="api", params={"role": "byoc"}).json()["data"]["roles"]
    ] == ["byoc"]
    assert esd.get("/prod/roles", user="api", params={"role": "nope"}).json()["data"]["roles"] == []


def test_unknown_user_is_unauthorized_and_lacking_permission_is_forbidden(esd):
    assert esd.get("/prod/roles", user="ghost").status_code == 401
    make_role(esd, "trainer", ["train:all"])
    make_user(esd, "bob", ["trainer"])
    response = esd.get("/prod/roles", user="bob")
    assert response.status_code == 403
    assert response.json() == {"statusCode": 403, "message": "User bob has no permissions: ['role:all', 'role:list']"}


def test_role_list_sees_own_and_created_roles_only(esd):
    make_role(esd, "lister", ["role:list", "role:create", "train:all"])
    make_role(esd, "other", ["train:all"])
    make_user(esd, "carol", ["lister"])
    make_role(esd, "carols", ["train:all"], user="carol")
    names = [r["role_name"] for r in esd.get("/prod/roles", user="carol").json()["data"]["roles"]]
    assert names == ["lister", "carols"]


def test_create_returns_role_created_and_creator_is_the_requester(esd):
    response = esd.post(
        "/prod/roles", user="api", json={"role_name": "r1", "permissions": ["train:all"], "creator": "someone"}
    )
    assert response.status_code == 201
    assert response.json() == {"statusCode": 201, "message": "role created"}
    role = esd.get("/prod/roles", user="api", params={"role": "r1"}).json()["data"]["roles"][0]
    assert role["creator"] == "api"


def test_upsert_overwrites(esd):
    make_role(esd, "byoc", ["sagemaker_endpoint:all"])
    role = esd.get("/prod/roles", user="api", params={"role": "byoc"}).json()["data"]["roles"][0]
    assert role["permissions"] == ["sagemaker_endpoint:all"]


def test_create_needs_role_all_or_create(esd):
    make_role(esd, "trainer", ["train:all"])
    make_user(esd, "bob", ["trainer"])
    response = esd.post("/prod/roles", user="bob", json={"role_name": "x", "permissions": ["train:all"]})
    assert response.status_code == 403
    assert response.json()["message"] == "User bob has no permissions: ['role:all', 'role:create']"


def test_role_create_may_only_grant_what_it_holds(esd):
    make_role(esd, "maker", ["role:create", "train:all"])
    make_user(esd, "dan", ["maker"])
    make_role(esd, "ok", ["train:list"], user="dan")
    response = esd.post("/prod/roles", user="dan", json={"role_name": "bad", "permissions": ["checkpoint:all"]})
    assert response.status_code == 400
    assert (
        response.json()["message"] == "creator dan have not permission to create role with permission: [checkpoint:all]"
    )


def test_role_create_may_not_overwrite_someone_elses_role(esd):
    make_role(esd, "maker", ["role:create", "train:all"])
    make_user(esd, "dan", ["maker"])
    response = esd.post("/prod/roles", user="dan", json={"role_name": "byoc", "permissions": ["train:all"]})
    assert response.status_code == 400
    assert response.json()["message"] == "creator dan not have permission to update role byoc"


def test_initial_skips_the_permission_check_but_needs_identity(esd):
    make_role(esd, "trainer", ["train:all"])
    make_user(esd, "bob", ["trainer"])
    response = esd.post(
        "/prod/roles", user="bob", json={"role_name": "t2", "permissions": ["train:all"], "initial": True}
    )
    assert response.status_code == 201
    assert (
        esd.post("/prod/roles", json={"role_name": "t3", "permissions": ["train:all"], "initial": True}).status_code
        == 401
    )
    response = esd.post(
        "/prod/roles", user="ghost", json={"role_name": "t3", "permissions": ["train:all"], "initial": True}
    )
    assert response.status_code == 400
    assert response.json()["message"] == 'user: "ghost" not exist'


def test_permission_without_colon_is_refused(esd):
    response = esd.post("/prod/roles", user="api", json={"role_name": "r", "permissions": ["everything"]})
    assert response.status_code == 400
    assert "everything" in response.json()["message"]


def test_default_role_cannot_be_deleted_and_nothing_is_deleted(esd):
    make_role(esd, "r1", ["train:all"])
    response = esd.delete("/prod/roles", json={"role_name_list": ["r1", "IT Operator"]})
    assert response.status_code == 400
    assert response.json() == {"statusCode": 400, "message": "cannot delete default role"}
    assert esd.get("/prod/roles", user="api", params={"role": "r1"}).json()["data"]["roles"]


def test_deleting_a_role_removes_it_from_users_and_needs_no_identity(esd):
    make_role(esd, "r1", ["train:all"])
    make_user(esd, "eve", ["r1", "byoc"])
    response = esd.delete("/prod/roles", json={"role_name_list": ["r1", "r1", "missing"]})
    assert response.status_code == 204
    eve = esd.get("/prod/users", user="api", params={"username": "eve"}).json()["data"]["users"][0]
    assert eve["roles"] == ["byoc"]
    assert not esd.get("/prod/roles", user="api", params={"role": "r1"}).json()["data"]["roles"]
