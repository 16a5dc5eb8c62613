"""The Users page in a real browser: roles and users created, assigned and deleted by an administrator, one
server page of users at a time, and a user without user or role permissions not offered the page."""

from __future__ import annotations

from tests.console.conftest import ADMIN, ADMIN_PASSWORD, screenshot, sign_in_with_token


def test_an_administrator_creates_a_role_and_a_user_with_it_pages_the_users_and_deletes_them(page, console_server):
    admin = console_server.token(ADMIN, ADMIN_PASSWORD)
    for number in range(11):  # more than one page of 10
        made = console_server.api(
            "POST", "/users", admin, json={"username": f"bulk{number:02}", "password": "pw-1", "roles": ["byoc"]}
        )
        assert made.status_code == 201, made.text
    sign_in_with_token(page, admin, "users")
    page.on("dialog", lambda dialog: dialog.accept())

    page.fill("#create-role input[name=role_name]", "reviewers")
    page.fill("#create-role input[name=permission]", "not-a-permission")
    page.click("#create-role button[type=submit]")
    error = page.wait_for_selector("#create-role [data-error-for=permission]:not(:empty)")
    assert "not-a-permission" in error.inner_text()  # the server's message, next to the field
    page.fill("#create-role input[name=permission]", "")
    page.check("#create-role input[value='inference:list']")
    page.check("#create-role input[value='checkpoint:list']")
    page.click("#create-role button[type=submit]")
    page.wait_for_selector("#role-list td:text-is('reviewers')")

    page.fill("#create-user input[name=username]", "rita")
    page.fill("#create-user input[name=password]", "rita-pw-1")
    page.check("#create-user input[data-role='reviewers']")
    page.click("#create-user button[type=submit]")
    page.wait_for_selector("#user-list td:text-is('rita')")
    rita = console_server.api("GET", "/users/me", console_server.token("rita", "rita-pw-1")).json()["data"]
    assert rita["roles"] == ["reviewers"] and rita["permissions"] == ["checkpoint:list", "inference:list"]
    screenshot(page, "users")

    # assigning roles: ESD's upsert takes the password too; the same one keeps the user's tokens
    page.click("#user-list tr:has(td:text-is('bulk10')) button:text('Roles…')")
    page.check("#user-roles input[data-role='reviewers']")
    page.fill("#user-roles input[name=password]", "pw-1")
    page.click("#user-roles button[type=submit]")
    page.wait_for_selector("#user-list tr:has(td:text-is('bulk10')) td:text-is('byoc, reviewers')")
    bulk = console_server.api("GET", "/users?username=bulk10", admin).json()["data"]["users"][0]
    assert bulk["roles"] == ["byoc", "reviewers"]

    # users come ten at a time from the server (names descending): bulk00 is on a later page
    assert page.locator("#user-list tbody tr").count() == 10
    assert page.locator("#user-list td:text-is('bulk00')").count() == 0
    page.click("#users .pager button:text('Next')")
    page.wait_for_selector("#user-list td:text-is('bulk00')")
    page.click("#users .pager button:text('Previous')")
    page.wait_for_selector("#user-list td:text-is('rita')")

    page.click("#user-list button[data-delete-user='rita']")
    page.wait_for_selector("#user-list td:text-is('rita')", state="detached")
    page.click("#role-list button[data-delete-role='reviewers']")
    page.wait_for_selector("#role-list td:text-is('reviewers')", state="detached")
    names = [u["username"] for u in console_server.api("GET", "/users", admin).json()["data"]["users"]]
    assert "rita" not in names and ADMIN in names
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "users-phone")


def test_a_trainer_is_offered_training_but_not_the_users_page(page, console_server):
    console_server.make_role("console-trainer", ["train:all"])
    sign_in_with_token(page, console_server.make_user("tom", "tom-pw-1", ["console-trainer"]), "users")
    nav = page.inner_text("#nav")
    assert "Training" in nav and "Users" not in nav
    assert "There is no page “users” for you." in page.inner_text("#main")
