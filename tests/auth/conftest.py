"""Strict-mode apps with an administrator and three team members, each signed in with a personal token."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

import pytest

from tests.api.conftest import ESDClient, esd, make_client  # noqa: F401  (shared fixtures)
from tests.checkpoints.conftest import put_part
from tests.support.no_worker_engine import without_workers

TEAM = ["train:all", "checkpoint:all", "inference:all", "sagemaker_endpoint:all"]


def lora_file() -> bytes:
    """A minimal valid safetensors file with one kohya LoRA tensor."""
    header = json.dumps(
        {"lora_unet_down_blocks_0.lora_down.weight": {"dtype": "F32", "shape": [1, 1], "data_offsets": [0, 4]}}
    ).encode()
    return struct.pack("<Q", len(header)) + header + b"\0\0\0\0"


@dataclass
class Member:
    """One signed-in user of a strict app: every call carries the API key and their token."""

    esd: ESDClient
    name: str
    token: str

    def call(self, method: str, path: str, **kwargs):
        headers = {**kwargs.pop("headers", {}), "Authorization": f"Bearer {self.token}"}
        return self.esd.call(method, path, headers=headers, **kwargs)

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, **kw):
        return self.call("POST", path, **kw)

    def put(self, path, **kw):
        return self.call("PUT", path, **kw)

    def delete(self, path, **kw):
        return self.call("DELETE", path, **kw)

    def upload(self, name: str, data: bytes, checkpoint_type: str = "Lora") -> dict:
        created = self.post(
            "/prod/checkpoints",
            json={
                "checkpoint_type": checkpoint_type,
                "params": {},
                "filenames": [{"filename": name, "parts_number": 1}],
            },
        )
        assert created.status_code == 201, created.json()
        checkpoint = created.json()["data"]["checkpoint"]
        part = put_part(self.esd, created.json()["data"]["s3PresignUrl"][name][0], data)
        done = self.put(
            f"/prod/checkpoints/{checkpoint['id']}",
            json={"status": "Active", "multi_parts_tags": {name: [{"ETag": part.headers["ETag"], "PartNumber": 1}]}},
        )
        assert done.status_code == 200, done.json()
        return checkpoint


def sign_in(esd: ESDClient, name: str, password: str) -> Member:
    answer = esd.post("/prod/tokens", json={"username": name, "password": password})
    assert answer.status_code == 201, answer.json()
    return Member(esd, name, answer.json()["data"]["secret"])


@dataclass
class Team:
    esd: ESDClient
    root: Member  # an administrator (IT Operator: role:all and the rest)
    alice: Member  # role team-a
    carol: Member  # role team-a too: shares what alice shares with her role
    bob: Member  # role team-b: shares nothing with alice


@pytest.fixture
def team(make_client) -> Team:
    app = make_client(auth_mode="strict", realtime_timeout_s=0.5)
    app.engine = without_workers(app, ready=True)
    assert app.post("/prod/users", json={"username": "root", "password": "root-pw", "initial": True}).status_code == 201
    root = sign_in(app, "root", "root-pw")
    for role in ("team-a", "team-b"):
        assert root.post("/prod/roles", json={"role_name": role, "permissions": TEAM}).status_code == 201
    for name, role in (("alice", "team-a"), ("carol", "team-a"), ("bob", "team-b")):
        answer = root.post("/prod/users", json={"username": name, "password": f"{name}-pw", "roles": [role]})
        assert answer.status_code == 201, answer.json()
    return Team(app, root, *(sign_in(app, name, f"{name}-pw") for name in ("alice", "carol", "bob")))
