"""One live server (uvicorn) for all the WebUI API tests: the tiny SD 1.5 checkpoint and a tiny 2x ESRGAN, one
Real-time endpoint, and users who log in the WebUI way: `alice` and `carol` may generate, `bob` may only
list. A real third-party client (`webuiapi` from PyPI) drives it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import webuiapi

from tests.api.conftest import ESDClient, make_client  # noqa: F401  (shared fixture)
from tests.checkpoints.conftest import upload_file
from tests.inferences.conftest import open_app
from tests.support.esd_jobs import create_endpoint
from tests.support.live_server import served

PASSWORD = "correct horse battery"
LISTER_ROLE = "webui-lister"


@dataclass
class WebUIServer:
    base: str  # http://127.0.0.1:port
    esd: ESDClient
    token: str  # alice's personal token

    @property
    def sdapi(self) -> str:
        return f"{self.base}/sdapi/v1"

    def client(self, user: str | None = "alice", password: str = PASSWORD, token: str | None = None, **kw):
        """A `webuiapi.WebUIApi` logged in with HTTP Basic, or with `token` as a Bearer token."""
        api = webuiapi.WebUIApi(baseurl=self.sdapi, sampler="Euler a", steps=2, **kw)
        if token is not None:
            api.session.headers["Authorization"] = f"Bearer {token}"
        elif user is not None:
            api.set_auth(user, password)
        return api


def _add_user(esd: ESDClient, name: str, roles: list[str]) -> None:
    answer = esd.post("/prod/users", user="api", json={"username": name, "password": PASSWORD, "roles": roles})
    assert answer.status_code == 201, answer.json()


@pytest.fixture(scope="package")  # one server (and one worker start) for every test here
def webui(tmp_path_factory) -> Iterator[WebUIServer]:
    from tests.support import tiny_extras, tiny_models

    folder = tmp_path_factory.mktemp("tiny-models")
    tiny_models.write_tiny_sd15_checkpoint(folder / "tiny-sd15.safetensors")
    tiny_extras.write_tiny_esrgan(folder / "RealESRGAN_x2plus.pth", scale=2)
    tiny_extras.write_tiny_u2net_onnx(folder / "u2net_human_seg.onnx")
    client = open_app(tmp_path_factory.mktemp("server"), endpoint_idle_s=1.0)
    esd = ESDClient(client)
    files = {"tiny-sd15.safetensors": "Stable-diffusion", "RealESRGAN_x2plus.pth": "ESRGAN"}
    for name, kind in (files | {"u2net_human_seg.onnx": "rembg"}).items():
        upload_file(esd, name, (folder / name).read_bytes(), 1, kind)
    lister = esd.post("/prod/roles", user="api", json={"role_name": LISTER_ROLE, "permissions": ["checkpoint:list"]})
    assert lister.status_code == 201, lister.json()
    for name, roles in (("alice", ["IT Operator"]), ("carol", ["IT Operator"]), ("bob", [LISTER_ROLE])):
        _add_user(esd, name, roles)
    endpoint = {"endpoint_name": "webui", "endpoint_type": "Real-time", "initial_instance_count": 1}
    assert create_endpoint(esd, **endpoint)["endpoint_status"] == "InService"
    login = esd.post("/prod/tokens", json={"name": "webui", "username": "alice", "password": PASSWORD})
    assert login.status_code == 201, login.json()
    with served(client.app) as base:
        yield WebUIServer(base, esd, login.json()["data"]["secret"])
    client.__exit__(None, None, None)
