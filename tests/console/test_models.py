"""The Models page in a real browser: upload a tiny checkpoint in parts, resume an interrupted upload sending
only the missing parts, and a user without checkpoint:create is not offered any change."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.console.conftest import screenshot, sign_in_with_token

UPLOADER_ROLE, VIEWER_ROLE = "cm-uploader", "cm-model-viewer"


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """The tiny SD 1.5 single file (written once: it takes seconds)."""
    from tests.support.tiny_models import write_tiny_sd15_checkpoint

    return write_tiny_sd15_checkpoint(tmp_path_factory.mktemp("cm-models") / "tiny.safetensors")


@pytest.fixture(scope="module")
def uploader(console_server) -> str:
    """A token of a user who may list and create checkpoints, but holds no checkpoint:all; what they upload is
    shared with VIEWER_ROLE (a checkpoint's owner list is its creator's roles)."""
    console_server.make_role(UPLOADER_ROLE, ["checkpoint:create", "checkpoint:list"])
    console_server.make_role(VIEWER_ROLE, ["checkpoint:list"])
    return console_server.make_user("cm-mia", "mia-pw-1", [UPLOADER_ROLE, VIEWER_ROLE])


def copy_as(source: Path, name: str) -> Path:
    target = source.parent / name
    shutil.copyfile(source, target)
    return target


def row(page, name: str):
    return page.locator("#model-list tr", has_text=name)


def part_puts(page) -> list[int]:
    """The part numbers of the signed part PUTs the page sends from now on."""
    sent: list[int] = []

    def seen(request):
        if request.method == "PUT" and "/objects/" in request.url:
            sent.append(int(parse_qs(urlsplit(request.url).query)["part"][0]))

    page.on("request", seen)
    return sent


def test_upload_a_checkpoint_from_the_computer_and_see_it_active(page, console_server, uploader, model_file):
    file = copy_as(model_file, "cm-upload.safetensors")
    sign_in_with_token(page, uploader, "models")
    sent = part_puts(page)
    page.set_input_files("#upload-model input[type=file]", str(file))
    page.select_option("#upload-model select[name=checkpoint_type]", "Stable-diffusion")
    page.fill("#upload-model input[name=part_size]", "4")
    page.click("#upload-model button[type=submit]")
    page.wait_for_selector("#upload-model .upload-status:has-text('is uploaded')")
    listed = row(page, "cm-upload.safetensors")
    listed.locator(".badge", has_text="Active").wait_for()
    assert sorted(sent) == list(range(1, -(-file.stat().st_size // (4 << 20)) + 1))  # 4 MiB parts, all sent
    assert f"{file.stat().st_size / 2**20:.1f} MiB" in listed.inner_text() and "Stable-diffusion" in listed.inner_text()
    assert page.get_attribute("#upload-model progress", "value") == "1"
    assert not page.is_visible("#upload-model button:text('Start over')")  # nothing saved to resume
    screenshot(page, "models")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "models-phone")

    listed.locator("button", has_text="Rename").click()
    page.fill("#rename-model input[name=name]", "1-bad")
    page.click("#rename-model button[type=submit]")
    refusal = page.wait_for_selector("#rename-model .form-error:not(:empty), #rename-model .field-error:not(:empty)")
    assert "1-bad" in refusal.inner_text() and page.input_value("#rename-model input[name=name]") == "1-bad"
    page.fill("#rename-model input[name=name]", "cm-renamed")
    page.click("#rename-model button[type=submit]")
    row(page, "cm-renamed").locator(".badge", has_text="Active").wait_for()


def test_an_upload_whose_signed_urls_expired_starts_over(page, console_server, uploader, model_file):
    file = copy_as(model_file, "cm-expired.safetensors")
    sign_in_with_token(page, uploader, "models")
    expired = []

    def once_expired(route):
        if not expired:  # the first part's URL has expired (as a saved upload's would, hours later)
            expired.append(route.request.url)
            return route.fulfill(status=403, body='{"message": "this URL for the part expired at 2026-01-01"}')
        return route.continue_()

    page.route("**/objects/**", once_expired)
    sent = part_puts(page)
    page.set_input_files("#upload-model input[type=file]", str(file))
    page.click("#upload-model button[type=submit]")
    page.wait_for_selector("#toasts :text('The saved upload expired: starting over')")
    row(page, "cm-expired.safetensors").locator(".badge", has_text="Active").wait_for()
    # both 8 MiB parts were sent in parallel (one refused), then the whole file again under a new upload
    assert sorted(sent) == [1, 1, 2, 2] and len(expired) == 1
    listed = console_server.api("GET", "/checkpoints", uploader, params={"per_page": 50}).json()["data"]
    assert [c["status"] for c in listed["checkpoints"] if c["name"] == ["cm-expired.safetensors"]] == ["Active"]


def test_a_resumed_upload_sends_only_the_missing_parts(page, console_server, uploader, model_file):
    file = copy_as(model_file, "cm-resume.safetensors")
    sign_in_with_token(page, uploader, "models")
    # The connection fails for parts 4 and later: parts 1-3 arrive and are remembered.
    page.route(
        "**/objects/**",
        lambda route: route.fulfill(status=408, body="connection lost")
        if int(parse_qs(urlsplit(route.request.url).query)["part"][0]) >= 4
        else route.continue_(),
    )
    page.set_input_files("#upload-model input[type=file]", str(file))
    page.fill("#upload-model input[name=part_size]", "2")
    page.click("#upload-model button[type=submit]")
    page.wait_for_selector("#upload-model .form-error:has-text('failed: connection lost')")
    assert "to resume" in page.inner_text("#upload-model .upload-status")
    assert page.is_visible("#upload-model button:text('Start over')")
    screenshot(page, "models-upload-failed")

    page.unroute("**/objects/**")
    page.reload()  # as after a closed tab: only localStorage is left
    sent = part_puts(page)
    page.set_input_files("#upload-model input[type=file]", str(file))
    page.wait_for_selector("#upload-model .upload-status:has-text('Resumes: 3 of 7 parts')")
    page.click("#upload-model button[type=submit]")
    row(page, "cm-resume.safetensors").locator(".badge", has_text="Active").wait_for()
    assert sorted(sent) == [4, 5, 6, 7]
    assert page.evaluate("localStorage.getItem('openesd.uploads')") == "{}"  # nothing left to resume
    listed = console_server.api("GET", "/checkpoints", uploader, params={"per_page": 50}).json()["data"]
    resumed = next(c for c in listed["checkpoints"] if c["name"] == ["cm-resume.safetensors"])
    assert resumed["status"] == "Active" and resumed["size"] == file.stat().st_size


def test_a_user_without_checkpoint_create_is_offered_no_upload_or_change(page, console_server, uploader):
    token = console_server.make_user("cm-vic", "vic-pw-1", [VIEWER_ROLE])
    sign_in_with_token(page, token, "models")
    row(page, "cm-renamed").wait_for()  # cm-mia's upload, shared with the viewers' role
    assert page.locator("#upload-model").count() == 0 and page.locator("#import-model").count() == 0
    assert page.locator("#model-list button:text('Delete'), #model-list button:text('Rename')").count() == 0
    screenshot(page, "models-viewer")


def test_an_import_the_server_refuses_shows_why_and_keeps_the_url(page, console_server, uploader):
    sign_in_with_token(page, uploader, "models")
    url = "http://127.0.0.1:9/private.safetensors"
    page.fill("#import-model input[name=urls]", url)
    page.click("#import-model button[type=submit]")
    refusal = page.wait_for_selector("#import-model .form-error:not(:empty), #import-model .field-error:not(:empty)")
    assert "non-public address 127.0.0.1" in refusal.inner_text()
    assert page.input_value("#import-model input[name=urls]") == url
