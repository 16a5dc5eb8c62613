"""The API-only install (`pip install -e '.[cluster]'`, docs/cluster.md) serves every route family.

A real server runs with an import blocker on its `PYTHONPATH`: importing anything of the worker extra
(or Ray, which only the Ray engine needs) raises ModuleNotFoundError, as it would on that install.
Each route family is driven once; none may answer 5xx.
"""

from __future__ import annotations

import base64
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import httpx
import pytest

from tests.support.server import ServerProcess

API_KEY = "workerFreeKey0123456789"
# Import names of the `worker` extra's distributions (pyproject.toml), and Ray. All of `safetensors`, not only
# `safetensors.torch`: the package itself comes with the worker extra, so model files are read in pure Python.
BLOCKED = (
    "torch",
    "torchvision",
    "PIL",
    "numpy",
    "diffusers",
    "transformers",
    "safetensors",
    "cv2",
    "ray",
    "spandrel",
    "rembg",
    "peft",
    "accelerate",
    "onnxruntime",
)
SITECUSTOMIZE = f'''
import sys

BLOCKED = {BLOCKED!r}


class WorkerStackBlocker:
    """Makes the worker stack look uninstalled."""

    def find_spec(self, name, path=None, target=None):
        if any(name == blocked or name.startswith(blocked + ".") for blocked in BLOCKED):
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked: the API runs without the worker extra)",
                                      name=name)
        return None


sys.meta_path.insert(0, WorkerStackBlocker())
for loaded in [m for m in sys.modules if any(m == b or m.startswith(b + ".") for b in BLOCKED)]:
    del sys.modules[loaded]
'''


@pytest.fixture(scope="module")
def blocked_env(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("blocker")
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))}


@pytest.fixture(scope="module")
def server(tmp_path_factory, blocked_env):
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = blocked_env["PYTHONPATH"]  # ServerProcess passes this process's environment on
    try:
        process = ServerProcess(tmp_path_factory.mktemp("server") / "data", api_keys=API_KEY)
    finally:
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved
    yield process
    process.stop()


@pytest.mark.parametrize("module", ["PIL", "numpy", "torch.nn", "safetensors.torch", "ray"])
def test_the_blocker_makes_the_worker_stack_unimportable(blocked_env, module):
    probe = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        env={**os.environ, **blocked_env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode == 1 and "blocked: the API runs without the worker extra" in probe.stderr


def test_every_route_family_answers_without_the_worker_stack(server):
    with httpx.Client(
        base_url=server.base + "/prod", headers={"x-api-key": API_KEY, "username": "api"}, timeout=60
    ) as http:
        answers = [http.get("/ping")]
        answers += _users_and_roles(http)
        answers += _checkpoint(http)
        answers += [http.get("/endpoints"), http.get("/inferences"), http.get("/trainings")]
        answers += _dataset(http)
    answers += _webui_api(server.base)
    failed = [
        f"{r.request.method} {r.request.url.path} -> {r.status_code} {r.text[:200]}"
        for r in answers
        if r.status_code >= 500
    ]
    assert not failed, "\n".join(failed) + "\n" + _log_tail(server.log)
    refused = [
        f"{r.request.method} {r.request.url.path} -> {r.status_code} {r.text[:200]}"
        for r in answers
        if r.status_code >= 400
    ]
    assert not refused, "\n".join(refused)


def _users_and_roles(http: httpx.Client) -> list[httpx.Response]:
    role = http.post("/roles", json={"role_name": "painter", "permissions": ["inference:all"], "creator": "api"})
    user = http.post(
        "/users", json={"username": "ann", "password": "pw-ann-123", "roles": ["painter"], "creator": "api"}
    )
    return [role, http.get("/roles"), user, http.get("/users")]


def _webui_api(base: str) -> list[httpx.Response]:
    """The AUTOMATIC1111 API's listings and png-info, as `ann` with HTTP Basic."""
    with httpx.Client(base_url=base + "/sdapi/v1", auth=("ann", "pw-ann-123"), timeout=60) as webui:
        answers = [webui.get(path) for path in ("/sd-models", "/loras", "/samplers", "/upscalers", "/options")]
        return answers + [webui.post("/png-info", json={"image": base64.b64encode(_png(4, 4)).decode()})]


def _checkpoint(http: httpx.Client) -> list[httpx.Response]:
    """An ESD multipart upload of a small kohya LoRA file: create, PUT the part, complete."""
    data = _safetensors(
        {
            "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": 4,
            "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": 4,
        }
    )
    created = http.post(
        "/checkpoints",
        json={
            "checkpoint_type": "Lora",
            "params": {"message": "no worker"},
            "filenames": [{"filename": "tiny.safetensors", "parts_number": 1}],
        },
    )
    if created.status_code != 201:
        return [created]
    checkpoint = created.json()["data"]["checkpoint"]
    part = httpx.put(created.json()["data"]["s3PresignUrl"]["tiny.safetensors"][0], content=data, timeout=60)
    done = http.put(
        f"/checkpoints/{checkpoint['id']}",
        json={
            "status": "Active",
            "multi_parts_tags": {"tiny.safetensors": [{"ETag": part.headers.get("ETag"), "PartNumber": 1}]},
        },
    )
    return [created, part, done, http.get("/checkpoints")]


def _dataset(http: httpx.Client) -> list[httpx.Response]:
    """ESD's client flow: images (one without caption) into `10_technic/`, then Enabled."""
    files = {"0.png": _png(8, 6), "0.txt": b"a technic photo", "1.png": _png(6, 8)}
    created = http.post(
        "/datasets",
        json={
            "dataset_name": "technic",
            "prefix": "10_technic",
            "params": {"description": "d"},
            "creator": "api",
            "content": [{"filename": f, "name": f, "type": "image", "params": {}} for f in files],
        },
    )
    if created.status_code != 201:
        return [created]
    uploads = [
        httpx.put(url, content=files[name], timeout=60) for name, url in created.json()["data"]["s3PresignUrl"].items()
    ]
    enabled = http.put("/datasets/technic", json={"status": "Enabled"})
    return [created, *uploads, enabled, http.get("/datasets/technic"), http.get("/datasets")]


def _safetensors(tensors: dict[str, int]) -> bytes:
    """A safetensors file of F32 vectors (name -> length), written without the safetensors package."""
    header, offset = {}, 0
    for name, length in tensors.items():
        header[name] = {"dtype": "F32", "shape": [length], "data_offsets": [offset, offset + 4 * length]}
        offset += 4 * length
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    return struct.pack("<Q", len(encoded)) + encoded + bytes(offset)


def _png(width: int, height: int) -> bytes:
    """A grey RGB PNG, written without Pillow."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = b"".join(b"\x00" + b"\x80" * 3 * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _log_tail(log: Path) -> str:
    return "server log:\n" + "\n".join(log.read_text().splitlines()[-40:])
