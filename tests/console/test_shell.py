"""The console's shell in a real browser: sign in with a password, the pages a user may use, tokens, sign out."""

from __future__ import annotations

import httpx

from tests.console.conftest import ADMIN, ADMIN_PASSWORD, screenshot, sign_in_with_token


def test_sign_in_with_a_password_shows_the_pages_and_signing_out_revokes_the_token(page, console_server):
    page.goto("/console")
    page.fill("#signin-password input[name=username]", ADMIN)
    page.fill("#signin-password input[name=password]", "wrong")
    page.click("#signin-password button[type=submit]")
    page.wait_for_selector("#signin-password .form-error:not(:empty), #signin-password .field-error:not(:empty)")
    screenshot(page, "signin-error")
    page.fill("#signin-password input[name=password]", ADMIN_PASSWORD)
    page.click("#signin-password button[type=submit]")
    page.wait_for_selector("#whoami")
    assert page.inner_text("#whoami") == ADMIN
    nav = page.inner_text("#nav")
    for title in ("Generate", "Jobs", "Models", "Endpoints", "Training", "Users", "Tokens"):
        assert title in nav, nav
    token = page.evaluate("localStorage.getItem('openesd.token')")
    assert token.startswith("oesd_") and token not in page.url
    page.click("#sign-out")
    page.wait_for_selector("#signin-password")
    assert page.evaluate("localStorage.getItem('openesd.token')") is None
    revoked = httpx.get(console_server.base + "/users/me", headers={"Authorization": f"Bearer {token}"})
    assert revoked.status_code == 403  # the console's token was revoked at sign-out


def test_a_user_sees_only_the_pages_their_role_allows_and_manages_their_own_tokens(page, console_server):
    console_server.make_role("viewer", ["inference:list", "checkpoint:list"])
    token = console_server.make_user("vera", "vera-pw-1", ["viewer"])
    sign_in_with_token(page, token, "account")
    nav = page.inner_text("#nav")
    assert "Jobs" in nav and "Models" in nav and "Tokens" in nav
    for hidden in ("Generate", "Endpoints", "Training", "Users"):
        assert hidden not in nav, nav
    page.fill("#create-token input[name=name]", "laptop")
    page.click("#create-token button[type=submit]")
    secret = page.input_value("#new-token input")
    assert secret.startswith("oesd_")
    page.wait_for_selector("#token-list td:text('laptop')")
    screenshot(page, "tokens")
    mine = httpx.get(console_server.base + "/users/me", headers={"Authorization": f"Bearer {secret}"})
    assert mine.status_code == 200


def test_the_console_is_served_with_a_strict_content_security_policy(console_server):
    answer = httpx.get(console_server.base + "/console/")
    policy = answer.headers["content-security-policy"]
    assert answer.status_code == 200 and "script-src 'self'" in policy and "default-src 'none'" in policy
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert httpx.get(console_server.base + "/console/app.js").headers["content-type"].startswith("text/javascript")
    # no file outside the package, whatever the path says
    for path in ("/console/..%2f..%2fsettings.py", "/console/../server/app.py", "/console/routes.py"):
        leaked = httpx.get(console_server.base + path)
        assert "import" not in leaked.text, path
