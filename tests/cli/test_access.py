"""Logging in, users, roles and personal tokens through `openesd`, against a real server."""

from __future__ import annotations

import tomllib

from tests.support.server import API_KEY


def test_login_stores_url_and_key_and_a_wrong_key_is_refused(cli, server, tmp_path):
    refused = cli("login", "--url", server.base, "--key", "wrong-key", ok=False)
    assert refused.exit_code == 1
    assert "Error: Forbidden (HTTP 403)" in refused.stderr
    assert not (tmp_path / "config" / "config.toml").exists()

    done = cli("login", "--url", server.base + "/prod/", "--key", API_KEY)
    assert f"Logged in to {server.base}/prod as api" in done.stdout
    stored = tomllib.loads((tmp_path / "config" / "config.toml").read_text())
    assert stored == {"url": server.base + "/prod/", "api_key": API_KEY}
    assert "IT Operator" in [r["role_name"] for r in cli.json("roles", "list")]


def test_environment_overrides_the_config_file(cli, server, monkeypatch):
    cli("login", "--url", server.base, "--key", API_KEY)
    monkeypatch.setenv("OPENESD_API_KEY", "not-the-key")
    failed = cli("roles", "list", ok=False)
    assert failed.exit_code == 1 and "Forbidden" in failed.stderr


def test_commands_before_login_say_how_to_log_in(cli):
    result = cli("checkpoints", "list", ok=False)
    assert result.exit_code == 1
    assert "not logged in: run `openesd login" in result.stderr


def test_roles_and_users_are_created_listed_and_removed(logged_in, server):
    cli = logged_in
    cli("roles", "create", "painter", "checkpoint:all", "inference:all")
    painter = [r for r in cli.json("roles", "list") if r["role_name"] == "painter"]
    assert painter == [{"role_name": "painter", "creator": "api", "permissions": ["checkpoint:all", "inference:all"]}]

    assert "user alice created" in cli("users", "create", "alice", "--password", "pw", "--role", "painter").stdout
    alice = [u for u in cli.json("users", "list") if u["username"] == "alice"]
    assert alice[0]["roles"] == ["painter"]
    assert "alice" in cli("users", "list").stdout  # the table

    missing = cli("users", "create", "bob", "--password", "pw", "--role", "no-such-role", ok=False)
    assert missing.exit_code == 1
    assert 'user roles "no-such-role" not exist' in missing.stderr

    cli("login", "--url", server.base, "--key", API_KEY, "--user", "alice")  # a user without user:list
    assert cli.json("tokens", "list") == []  # now speaking as alice
    nobody = cli("login", "--url", server.base, "--key", API_KEY, "--user", "nobody", ok=False)
    assert nobody.exit_code == 1 and "Unauthorized" in nobody.stderr
    cli("login", "--url", server.base, "--key", API_KEY)
    cli("users", "rm", "alice")
    cli("roles", "rm", "painter")
    assert "alice" not in [u["username"] for u in cli.json("users", "list")]
    assert "painter" not in [r["role_name"] for r in cli.json("roles", "list")]


def test_a_personal_token_logs_in_and_can_be_revoked(logged_in, server):
    cli = logged_in
    created = cli.json("tokens", "create", "--name", "laptop")
    secret = created["secret"]
    assert secret.startswith("oesd_")

    cli("login", "--url", server.base, "--key", API_KEY, "--token", secret)
    listed = cli.json("tokens", "list")
    assert [t["name"] for t in listed] == ["laptop"]
    assert all("secret" not in t for t in listed)

    cli("tokens", "rm", created["token"]["id"])
    refused = cli("tokens", "list", ok=False)
    assert refused.exit_code == 1 and "Error: Unauthorized (HTTP 401)" in refused.stderr


def test_endpoints_create_sends_preload_models_and_shows_the_refusal(logged_in):
    refused = logged_in("endpoints", "create", "--name", "warm", "--preload", "nope.safetensors", ok=False)
    assert refused.exit_code == 1
    assert "preload_models: checkpoint with name nope.safetensors, type Stable-diffusion is not found" in refused.stderr
