"""The console in a real headless Chromium (Debian's package, driven by Playwright) against a real server.

One strict-mode server and one browser for the whole session; each test gets a fresh browser context
(its own localStorage, so its own sign-in). Screenshots go to $OPENESD_SCREENSHOTS (default
artifacts/console), one per page a test shows.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import service_missing
from tests.support.server import API_KEY, ServerProcess

ADMIN, ADMIN_PASSWORD = "root", "console-pw-1"
SCREENSHOTS = Path(os.environ.get("OPENESD_SCREENSHOTS", "artifacts/console"))


@dataclass
class ConsoleServer:
    process: ServerProcess

    @property
    def base(self) -> str:
        return self.process.base

    def api(self, method: str, path: str, token: str | None = None, **kwargs) -> httpx.Response:
        """The API as a script would call it: with the API key, and a personal token when given."""
        headers = {"x-api-key": API_KEY, **kwargs.pop("headers", {})}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.request(method, self.base + path, headers=headers, timeout=60, **kwargs)

    def token(self, username: str, password: str) -> str:
        answer = self.api("POST", "/tokens", json={"username": username, "password": password, "name": "test"})
        assert answer.status_code == 201, answer.text
        return answer.json()["data"]["secret"]

    def make_user(self, username: str, password: str, roles: list[str]) -> str:
        """A user with `roles` (created by the administrator); returns a personal token of theirs."""
        admin = self.token(ADMIN, ADMIN_PASSWORD)
        answer = self.api("POST", "/users", admin, json={"username": username, "password": password, "roles": roles})
        assert answer.status_code == 201, answer.text
        return self.token(username, password)

    def make_role(self, name: str, permissions: list[str]) -> None:
        admin = self.token(ADMIN, ADMIN_PASSWORD)
        answer = self.api("POST", "/roles", admin, json={"role_name": name, "permissions": permissions})
        assert answer.status_code == 201, answer.text


@pytest.fixture(scope="session")
def console_server(tmp_path_factory) -> Iterator[ConsoleServer]:
    """A strict-mode server whose administrator `root` has a password."""
    process = ServerProcess(
        tmp_path_factory.mktemp("console") / "data",
        api_keys=API_KEY,
        auth_mode="strict",
        endpoint_idle_s="600",
    )
    server = ConsoleServer(process)
    boot = server.api("POST", "/users", json={"username": ADMIN, "password": ADMIN_PASSWORD, "initial": True})
    assert boot.status_code == 201, boot.text
    yield server
    process.stop()


@pytest.fixture(scope="session")
def browser():
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        service_missing("Chromium is not installed (Debian package `chromium`)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser, console_server):
    """A fresh context (nothing signed in); console errors in the page fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=console_server.base)
    context.set_default_timeout(15_000)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    opened.errors = errors
    yield opened
    context.close()
    unexpected = [e for e in errors if "status of 4" not in e]  # a 4xx answer the page shows is expected
    assert not unexpected, unexpected


def sign_in_with_token(page, token: str, where: str = "") -> None:
    """Open the console already signed in with `token` (the sign-in form itself is tested in test_shell)."""
    page.goto("/console/")
    page.wait_for_selector("#signin-password")
    page.evaluate("token => localStorage.setItem('openesd.token', token)", token)
    page.goto(f"/console/?signed-in#/{where}")  # a new load, not a hash change: nothing of the first is left
    page.wait_for_selector("#whoami")


def screenshot(page, name: str) -> Path:
    """A full-page PNG of what the test shows, for the issue note and for people reviewing the console."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def admin_client(server: ConsoleServer):
    """The SDK as the administrator (a personal token of `root`)."""
    from openesd.client import Client

    return Client(server.base, API_KEY, username=None, token=server.token(ADMIN, ADMIN_PASSWORD))


@pytest.fixture(scope="session")
def tiny_model(console_server, tmp_path_factory) -> str:
    """The tiny SD 1.5 checkpoint uploaded by the administrator (as a script would; the upload page is tested
    on its own); returns its file name."""
    from tests.support.tiny_models import write_tiny_sd15_checkpoint

    path = tmp_path_factory.mktemp("console-models") / "tiny-sd15.safetensors"
    write_tiny_sd15_checkpoint(path)
    with admin_client(console_server) as client:
        client.checkpoints.upload(path, "Stable-diffusion")
    return path.name


# A team member's role: generate, see jobs and models, upload models, train; no user administration.
MEMBER_ROLE = "console-member"
MEMBER_PERMISSIONS = [
    "inference:create",
    "inference:list",
    "checkpoint:create",
    "checkpoint:list",
    "sagemaker_endpoint:list",
    "train:all",
]


@pytest.fixture(scope="session")
def endpoint(console_server, tiny_model) -> str:
    """One InService async endpoint (one worker instance) for the administrator's roles and MEMBER_ROLE (create
    users of that role with `console_server.make_user(name, password, [MEMBER_ROLE])`); returns its name."""
    console_server.make_role(MEMBER_ROLE, MEMBER_PERMISSIONS)
    with admin_client(console_server) as client:
        roles = [role["role_name"] for role in client.roles.list()]
        created = client.endpoints.create(name="console", roles=roles)
        name = created.get("endpoint_name") or "esd-async-console"
        client.endpoints.wait_for(name, timeout=300)
    return name
