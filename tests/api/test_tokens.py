"""Personal tokens and the strict mode (decisions.md, Authentication and identity)."""

from __future__ import annotations

from tests.api.test_roles import make_user


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_token_is_shown_once_and_identifies_its_owner(esd):
    make_user(esd, "bob", ["byoc"])
    created = esd.post("/prod/tokens", user="bob", json={"name": "laptop"})
    assert created.status_code == 201
    secret = created.json()["data"]["secret"]
    assert secret.startswith("oesd_")
    listed = esd.get("/prod/tokens", headers=bearer(secret)).json()["data"]["tokens"]
    assert [t["name"] for t in listed] == ["laptop"]
    assert all("secret" not in t and secret not in str(t) for t in listed)
    # the token outranks the username header
    roles = esd.get("/prod/roles", headers={**bearer(secret), "username": "ghost"})
    assert roles.status_code == 200


def test_revoked_or_forged_token_is_unauthorized(esd):
    secret = esd.post("/prod/tokens", user="api", json={}).json()["data"]["secret"]
    token_id = esd.get("/prod/tokens", headers=bearer(secret)).json()["data"]["tokens"][0]["id"]
    assert esd.delete(f"/prod/tokens/{token_id}", headers=bearer(secret)).status_code == 204
    assert esd.get("/prod/roles", headers=bearer(secret)).status_code == 401
    assert esd.get("/prod/roles", headers=bearer("oesd_forged")).status_code == 401


def test_last_used_moves_in_steps_of_a_minute_not_on_every_request(esd):
    secret = esd.post("/prod/tokens", user="api", json={}).json()["data"]["secret"]
    first = esd.get("/prod/tokens", headers=bearer(secret)).json()["data"]["tokens"][0]["last_used"]
    assert first is not None
    again = esd.get("/prod/tokens", headers=bearer(secret)).json()["data"]["tokens"][0]["last_used"]
    assert again == first  # a write per request made every authenticated read queue on the write lock


def test_cannot_revoke_someone_elses_token(esd):
    make_user(esd, "bob", ["byoc"])
    esd.post("/prod/tokens", user="bob", json={"name": "b"})
    token_id = esd.get("/prod/tokens", user="bob").json()["data"]["tokens"][0]["id"]
    response = esd.delete(f"/prod/tokens/{token_id}", user="api")
    assert response.status_code == 404
    assert token_id in response.json()["message"]


def test_password_login_mints_a_token(esd):
    make_user(esd, "bob", ["byoc"])
    assert esd.post("/prod/tokens", json={"username": "bob", "password": "wrong"}).status_code == 401
    response = esd.post("/prod/tokens", json={"username": "bob", "password": "pw"})
    assert response.status_code == 201
    assert response.json()["data"]["token"]["username"] == "bob"


def test_strict_mode_refuses_header_identity_and_checks_every_route(make_client):
    esd = make_client(auth_mode="strict")
    assert esd.get("/prod/roles", user="api").status_code == 401
    assert esd.get("/prod/roles", headers={"Authorization": "Bearer 617069"}).status_code == 401
    # bootstrap works while no administrator with a password exists, then is refused
    boot = esd.post("/prod/users", json={"username": "root", "password": "pw", "initial": True})
    assert boot.status_code == 201
    again = esd.post("/prod/users", json={"username": "root2", "password": "pw", "initial": True})
    assert again.status_code == 403
    secret = esd.post("/prod/tokens", json={"username": "root", "password": "pw"}).json()["data"]["secret"]
    assert esd.get("/prod/roles", headers=bearer(secret)).status_code == 200
    # a route ESD leaves open now needs a token with the permission
    assert esd.delete("/prod/roles", json={"role_name_list": ["byoc"]}).status_code == 401
    assert esd.delete("/prod/roles", json={"role_name_list": ["byoc"]}, headers=bearer(secret)).status_code == 204


def test_a_token_or_a_password_login_passes_the_gateway_without_the_api_key(make_client):
    """The console and WebUI clients hold a personal token, never the deployment key (decisions.md)."""
    esd = make_client(auth_mode="strict")
    esd.post("/prod/users", json={"username": "root", "password": "pw", "initial": True})
    login = esd.post("/prod/tokens", key=None, json={"username": "root", "password": "pw"})
    assert login.status_code == 201, login.text
    secret = login.json()["data"]["secret"]
    assert esd.get("/prod/roles", key=None, headers=bearer(secret)).status_code == 200
    assert esd.post("/prod/tokens", key=None, json={"username": "root", "password": "no"}).status_code == 401
    for forged in ("oesd_forged", "not-a-token", ""):
        refused = esd.get("/prod/roles", key=None, headers=bearer(forged))
        assert (refused.status_code, refused.json()) == (403, {"message": "Forbidden"})
    # a revoked token no longer passes
    token_id = esd.get("/prod/tokens", key=None, headers=bearer(secret)).json()["data"]["tokens"][0]["id"]
    assert esd.delete(f"/prod/tokens/{token_id}", key=None, headers=bearer(secret)).status_code == 204
    assert esd.get("/prod/roles", key=None, headers=bearer(secret)).status_code == 403


def test_the_gateway_asks_every_request_for_the_key_when_tokens_are_not_accepted(make_client):
    esd = make_client(gateway_accepts_tokens=False)
    secret = esd.post("/prod/tokens", user="api", json={}).json()["data"]["secret"]
    assert esd.get("/prod/roles", key=None, headers=bearer(secret)).status_code == 403
    assert esd.post("/prod/tokens", key=None, json={"username": "api", "password": "x"}).status_code == 403
    assert esd.get("/prod/roles", headers=bearer(secret)).status_code == 200


def test_users_me_names_the_requester_with_roles_and_permissions(esd):
    make_user(esd, "bob", ["byoc"])
    secret = esd.post("/prod/tokens", user="bob", json={}).json()["data"]["secret"]
    me = esd.get("/prod/users/me", key=None, headers=bearer(secret))
    assert me.status_code == 200, me.text
    assert me.json()["data"]["username"] == "bob" and me.json()["data"]["roles"] == ["byoc"]
    assert "inference:all" in me.json()["data"]["permissions"]
    assert esd.get("/prod/users/me", user="ghost").status_code == 401
