"""Users, passwords, tokens and logins in `strict` mode, and what compat keeps (decisions.md, Gateway and identity)."""

from __future__ import annotations

import time

from openesd.metadata.models import User
from tests.api.test_tokens import bearer


def strict_server(make_client, **overrides):
    """A strict-mode server with the administrator `root` (bootstrap) and its token."""
    esd = make_client(auth_mode="strict", **overrides)
    assert esd.post("/prod/users", json={"username": "root", "password": "rootpw", "initial": True}).status_code == 201
    return esd, bearer(login(esd, "root", "rootpw"))


def login(esd, username, password) -> str:
    response = esd.post("/prod/tokens", json={"username": username, "password": password})
    assert response.status_code == 201, response.json()
    return response.json()["data"]["secret"]


def upsert(esd, headers, username, password, roles):
    return esd.post("/prod/users", headers=headers, json={"username": username, "password": password, "roles": roles})


def stored(esd, username) -> User:
    with esd.http.app.state.sessionmaker() as session:
        return session.get(User, username)


def make_user_administrator(esd, root, name="carol"):
    """`name` holds user administration (`user:all`) and nothing else: not an administrator."""
    role = {"role_name": "user admins", "permissions": ["user:all"]}
    assert esd.post("/prod/roles", headers=root, json=role).status_code == 201
    assert upsert(esd, root, name, "carolpw", ["user admins"]).status_code == 201
    return bearer(login(esd, name, "carolpw"))


def test_strict_never_returns_a_password_and_stores_an_argon2_hash(make_client):
    esd, root = strict_server(make_client)
    refused = esd.get("/prod/users", headers=root, params={"show_password": "1"})
    assert refused.status_code == 400
    assert refused.json()["message"] == (
        "show_password is not available in strict mode: passwords are stored as argon2 hashes"
    )
    listed = esd.get("/prod/users", headers=root).json()["data"]["users"]
    assert {u["username"]: u["password"] for u in listed}["root"] == "********"
    record = stored(esd, "root")
    assert record.password_hash.startswith("$argon2id$") and record.password_ciphertext is None


def test_a_compat_user_logs_in_after_the_switch_to_strict_and_is_rehashed(make_client):
    compat = make_client()
    assert upsert(compat, {"username": "api"}, "bob", "bobpw", ["byoc"]).status_code == 201
    assert stored(compat, "bob").password_ciphertext is not None
    strict = make_client(auth_mode="strict")
    assert strict.post("/prod/tokens", json={"username": "bob", "password": "wrong"}).status_code == 401
    assert stored(strict, "bob").password_hash is None
    login(strict, "bob", "bobpw")
    record = stored(strict, "bob")
    assert record.password_hash.startswith("$argon2id$") and record.password_ciphertext is None
    assert strict.get("/prod/roles", headers=bearer(login(strict, "bob", "bobpw"))).status_code == 200


def test_a_user_administrator_cannot_take_over_or_remove_an_administrator(make_client):
    esd, root = strict_server(make_client)
    carol = make_user_administrator(esd, root)
    assert esd.get("/prod/users", headers=carol, params={"show_password": "1"}).status_code == 400
    for response in (
        upsert(esd, carol, "root", "taken", ["user admins"]),
        esd.delete("/prod/users", headers=carol, json={"user_name_list": ["root"]}),
    ):
        assert response.status_code == 403
        assert response.json()["message"].startswith("user root holds checkpoint:all, inference:all, role:all")
        assert "only an administrator (role:all)" in response.json()["message"]
    login(esd, "root", "rootpw")  # still root's password, still there
    # creating someone with more than one holds is refused as before
    assert upsert(esd, carol, "mallory", "pw", ["IT Operator"]).status_code == 403


def test_a_user_administrator_manages_users_within_its_own_permissions(make_client):
    esd, root = strict_server(make_client)
    carol = make_user_administrator(esd, root)
    assert upsert(esd, carol, "dave", "davepw", ["user admins"]).status_code == 201
    assert upsert(esd, carol, "dave", "newpw", ["user admins"]).status_code == 201
    dave = bearer(login(esd, "dave", "newpw"))
    assert esd.delete("/prod/users", headers=carol, json={"user_name_list": ["dave"]}).status_code == 204
    assert upsert(esd, carol, "dave", "newpw", ["user admins"]).status_code == 201
    assert esd.get("/prod/tokens", headers=dave).status_code == 401  # a new dave does not inherit the old tokens
    # an administrator may change anyone
    assert upsert(esd, root, "carol", "rotated", ["user admins"]).status_code == 201


def test_changing_a_password_revokes_the_users_tokens(make_client):
    esd, root = strict_server(make_client)
    assert upsert(esd, root, "bob", "bobpw", ["byoc"]).status_code == 201
    old = bearer(login(esd, "bob", "bobpw"))
    assert upsert(esd, root, "bob", "bobpw", ["byoc"]).status_code == 201  # the same password: kept
    assert esd.get("/prod/roles", headers=old).status_code == 200
    assert upsert(esd, root, "bob", "changed", ["byoc"]).status_code == 201
    assert esd.get("/prod/roles", headers=old).status_code == 401
    assert esd.get("/prod/roles", headers=bearer(login(esd, "bob", "changed"))).status_code == 200


def test_changing_a_password_revokes_tokens_in_compat_too(esd):
    assert upsert(esd, {"username": "api"}, "bob", "bobpw", ["byoc"]).status_code == 201
    old = bearer(login(esd, "bob", "bobpw"))
    assert upsert(esd, {"username": "api"}, "bob", "changed", ["byoc"]).status_code == 201
    assert esd.get("/prod/tokens", headers=old).status_code == 401


def test_wrong_passwords_lock_the_user_name_on_every_replica_until_the_backoff_ends(make_client):
    # Lockouts of a few seconds: each argon2 check takes most of a second on a loaded 2-core machine.
    one, root = strict_server(make_client, login_lockout_s=4.0)
    other = make_client(auth_mode="strict", login_lockout_s=4.0)  # a second replica on the same database
    for _ in range(5):
        assert one.post("/prod/tokens", json={"username": "root", "password": "guess"}).status_code == 401
    locked_at = time.monotonic()
    for replica in (one, other):
        locked = replica.post("/prod/tokens", json={"username": "root", "password": "rootpw"})
        assert locked.status_code == 429
        wait = int(locked.headers["Retry-After"])
        assert 1 <= wait <= 4
        assert locked.json()["message"] == f"too many failed logins for this user name: try again in {wait} s"
    time.sleep(max(0.0, locked_at + 4.1 - time.monotonic()))
    login(other, "root", "rootpw")
    # the good password cleared the count: one more wrong guess does not lock again
    assert one.post("/prod/tokens", json={"username": "root", "password": "guess"}).status_code == 401
    login(one, "root", "rootpw")


def test_a_locked_user_name_backs_off_longer_with_each_further_failure(make_client):
    esd, _ = strict_server(make_client, login_lockout_s=3.0, login_max_failures=2)
    for _ in range(2):
        esd.post("/prod/tokens", json={"username": "root", "password": "guess"})
    time.sleep(3.1)
    assert esd.post("/prod/tokens", json={"username": "root", "password": "guess"}).status_code == 401
    # the next lockout is twice the first: more than the first's 3 s are left
    assert int(esd.post("/prod/tokens", json={"username": "root", "password": "rootpw"}).headers["Retry-After"]) > 3


def test_guesses_at_many_user_names_lock_the_client_address(make_client):
    esd, _ = strict_server(make_client, login_max_failures_per_address=3)
    for name in ("ann", "ben", "cid"):
        assert esd.post("/prod/tokens", json={"username": name, "password": "guess"}).status_code == 401
    locked = esd.post("/prod/tokens", json={"username": "root", "password": "rootpw"})
    assert locked.status_code == 429
    assert locked.json()["message"].startswith("too many failed logins for this address")
    assert int(locked.headers["Retry-After"]) == 60


def test_compat_keeps_esd_unthrottled_logins(esd):
    assert upsert(esd, {"username": "api"}, "bob", "bobpw", ["byoc"]).status_code == 201
    for _ in range(8):
        assert esd.post("/prod/tokens", json={"username": "bob", "password": "guess"}).status_code == 401
    login(esd, "bob", "bobpw")
