"""`/users`: esd-api.md §5 and §12."""

from __future__ import annotations

from tests.api.test_roles import make_role, make_user


def users_of(esd, user="api", **params):
    response = esd.get("/prod/users", user=user, params=params)
    assert response.status_code == 200, response.json()
    return response.json()["data"]


def test_seeded_api_user_has_no_password_and_admin_permissions(esd):
    data = users_of(esd)
    assert data["previous_evaluated_key"] == data["last_evaluated_key"] == "not_applicable"
    assert data["users"] == [
        {
            "username": "api",
            "roles": ["IT Operator"],
            "creator": "ESD",
            "permissions": [
                "checkpoint:all",
                "inference:all",
                "role:all",
                "sagemaker_endpoint:all",
                "train:all",
                "user:all",
            ],
            "password": "*",
        }
    ]


def test_bootstrap_with_initial_needs_only_the_key_and_repeats(esd):
    for _ in range(2):
        response = esd.post(
            "/prod/users", json={"username": "admin", "password": "s3cret", "initial": True, "roles": ["byoc"]}
        )
        assert response.status_code == 201
        assert response.json() == {
            "statusCode": 201,
            "message": "Created",
            "data": {"user": {"username": "admin", "roles": ["IT Operator"]}, "all_roles": ["IT Operator", "byoc"]},
        }
    admin = users_of(esd, username="admin")["users"][0]
    assert admin["creator"] == "ESD" and admin["password"] == "********"


def test_bootstrap_can_be_turned_off(make_client):
    esd = make_client(bootstrap_enabled=False)
    response = esd.post("/prod/users", json={"username": "admin", "password": "pw", "initial": True})
    assert response.status_code == 403
    assert "OPENESD_BOOTSTRAP_ENABLED" in response.json()["message"]


def test_password_is_required_by_the_handler(esd):
    response = esd.post("/prod/users", user="api", json={"username": "x", "roles": ["byoc"]})
    assert response.status_code == 400
    assert response.json()["message"] == "UpsertUserEvent.__init__() missing 1 required positional argument: 'password'"


def test_show_password_returns_the_plaintext(esd):
    make_user(esd, "bob", ["byoc"])
    assert users_of(esd, username="bob", show_password="False")["users"][0]["password"] == "pw"
    assert users_of(esd, username="bob")["users"][0]["password"] == "********"


def test_unknown_username_query_is_a_400(esd):
    response = esd.get("/prod/users", user="api", params={"username": "ghost"})
    assert response.status_code == 400
    assert response.json()["message"] == 'user: "ghost" not exist'


def test_missing_role_is_named(esd):
    response = esd.post(
        "/prod/users", user="api", json={"username": "x", "password": "p", "roles": ["byoc", "nope", "nada"]}
    )
    assert response.status_code == 400
    assert response.json()["message"] == 'user roles "nope" not exist'


def test_create_needs_user_all(esd):
    make_role(esd, "listers", ["user:list", "user:create"])
    make_user(esd, "lee", ["listers"])
    response = esd.post("/prod/users", user="lee", json={"username": "x", "password": "p", "roles": ["listers"]})
    assert response.status_code == 403
    assert response.json()["message"] == "User lee has no permissions: ['user:all']"


def test_cannot_assign_permissions_one_does_not_hold(esd):
    make_role(esd, "useradmin", ["user:all"])
    make_user(esd, "uma", ["useradmin"])
    response = esd.post("/prod/users", user="uma", json={"username": "x", "password": "p", "roles": ["byoc"]})
    assert response.status_code == 403
    assert response.json()["message"].startswith("creator has no permission to assign permission [")


def test_user_list_sees_created_users_and_self(esd):
    make_role(esd, "ul", ["user:list", "user:all"])
    make_role(esd, "only_list", ["user:list"])
    make_user(esd, "mgr", ["ul"])
    make_user(esd, "viewer", ["only_list"])
    make_user(esd, "minion", ["only_list"], creator="mgr")
    assert [u["username"] for u in users_of(esd, user="viewer")["users"]] == ["viewer"]
    names = [u["username"] for u in users_of(esd, user="api")["users"]]
    assert names == sorted(names, reverse=True) and {"mgr", "viewer", "minion", "api"} <= set(names)


def test_unknown_roles_contribute_no_permissions(esd):
    make_role(esd, "temp", ["train:all"])
    make_user(esd, "tia", ["temp", "byoc"])
    esd.delete("/prod/roles", json={"role_name_list": ["temp"]})
    assert users_of(esd, username="tia")["users"][0]["roles"] == ["byoc"]


def test_delete_users_tolerates_unknown_names_and_needs_user_all(esd):
    make_user(esd, "gone", ["byoc"])
    response = esd.delete("/prod/users", user="api", json={"user_name_list": ["gone", "never-was"]})
    assert response.status_code == 204 and response.content == b""
    assert "gone" not in [u["username"] for u in users_of(esd)["users"]]
    make_role(esd, "t", ["train:all"])
    make_user(esd, "tom", ["t"])
    response = esd.delete("/prod/users", user="tom", json={"user_name_list": ["api"]})
    assert response.status_code == 403
    assert response.json()["message"] == "User tom has no permissions: ['user:all']"


def test_users_are_listed_a_page_at_a_time_with_limit(esd):
    make_role(esd, "only_list", ["user:list"])
    for name in ("pa", "pb", "pc", "pd"):
        make_user(esd, name, ["byoc"])
    make_user(esd, "pv", ["only_list"])
    everyone = [u["username"] for u in users_of(esd)["users"]]
    seen, key = [], None
    while True:
        page = users_of(esd, limit=2, **({"exclusive_start_key": key} if key else {}))
        assert len(page["users"]) <= 2
        seen += [u["username"] for u in page["users"]]
        key = page["last_evaluated_key"]
        if key is None:
            break
    assert seen == everyone and len(seen) == 6
    # `user:list` alone pages over the users it created and itself, as the full listing does
    assert [u["username"] for u in users_of(esd, user="pv", limit=5)["users"]] == ["pv"]


def test_a_bad_user_page_is_a_400_naming_the_value(esd):
    response = esd.get("/prod/users", user="api", params={"limit": 2, "exclusive_start_key": "nope"})
    assert response.status_code == 400 and "'nope' is not a key returned by this listing" in response.json()["message"]
    response = esd.get("/prod/users", user="api", params={"limit": 0})
    assert response.status_code == 400 and "limit must be at least 1, got 0" in response.json()["message"]
