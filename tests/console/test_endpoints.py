"""The Endpoints page in a real browser: create an endpoint from the form, see it listed, delete it."""

from __future__ import annotations

from tests.console.conftest import ADMIN, ADMIN_PASSWORD, screenshot, sign_in_with_token


def test_create_an_endpoint_from_the_page_see_it_listed_and_delete_it(page, console_server):
    console_server.make_role("cm-endpoint-team", ["inference:create"])
    admin = console_server.token(ADMIN, ADMIN_PASSWORD)
    sign_in_with_token(page, admin, "endpoints")
    form = "#create-endpoint"
    page.fill(f"{form} input[name=endpoint_name]", "cm--page")
    page.fill(f"{form} input[name=instance_type]", "cpu")
    page.check(f"{form} input[value=cm-endpoint-team]")
    page.click(f"{form} button[type=submit]")
    # the server's message, next to the field it names; what was typed stays
    error = page.wait_for_selector(f"{form} [data-error-for=endpoint_name]:not(:empty)")
    assert "endpoint_name 'cm--page' may only hold" in error.inner_text()
    assert page.is_checked(f"{form} input[value=cm-endpoint-team]")
    page.fill(f"{form} input[name=endpoint_name]", "cm-page")
    page.click(f"{form} button[type=submit]")
    listed = page.locator("#endpoint-list tr", has_text="esd-async-cm-page")
    listed.wait_for()
    assert "cm-endpoint-team" in listed.inner_text() and "cpu" in listed.inner_text()
    assert "0 / 0 / 1" in listed.inner_text() or "1 / 0 / 1" in listed.inner_text()
    screenshot(page, "endpoints")

    page.on("dialog", lambda dialog: dialog.accept())
    listed.locator("button", has_text="Delete").click()
    listed.wait_for(state="detached")
    names = [e["endpoint_name"] for e in console_server.api("GET", "/endpoints", admin).json()["data"]["endpoints"]]
    assert "esd-async-cm-page" not in names


def test_a_user_who_may_only_list_endpoints_is_offered_no_create_or_delete(page, console_server):
    console_server.make_role("cm-endpoint-viewer", ["sagemaker_endpoint:list"])
    token = console_server.make_user("cm-eve", "eve-pw-1", ["cm-endpoint-viewer"])
    sign_in_with_token(page, token, "endpoints")
    page.wait_for_selector("#endpoint-list")
    assert page.locator("#create-endpoint").count() == 0
    assert page.locator("#endpoint-list button", has_text="Delete").count() == 0
