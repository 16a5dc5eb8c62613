"""The OpenESD Python SDK: every ESD resource over HTTP, with upload, generate and wait helpers.

from openesd.client import Client
client = Client("http://127.0.0.1:8080", api_key="…", username="api")
client.checkpoints.upload("model.safetensors", "Stable-diffusion")
client.generate("txt2img", prompt="a cat", models={"Stable-diffusion": ["model.safetensors"]}, out_dir="out")
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from openesd.client._transport import ESDError, JobFailed, Transport, identity_headers
from openesd.client.checkpoints import Checkpoints, Upload
from openesd.client.datasets import Datasets
from openesd.client.endpoints import Endpoints
from openesd.client.inferences import Generation, Inferences
from openesd.client.payloads import img2img_payload, txt2img_payload
from openesd.client.roles import Roles
from openesd.client.tokens import Tokens
from openesd.client.trainings import Trainings
from openesd.client.users import Users
from openesd.client.webhooks import WebhookSecrets

__all__ = ["Client", "ESDError", "Generation", "JobFailed", "Upload", "img2img_payload", "txt2img_payload"]


class Client:
    """An ESD server; identity by `username` header (ESD 1.5.0) or a personal `token` (OpenESD)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        username: str | None = "api",
        token: str | None = None,
        *,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ):
        self._t = Transport(base_url, identity_headers(api_key, username, token), timeout=timeout, transport=transport)
        self.base_url = self._t.base_url
        self.users, self.roles, self.tokens = Users(self._t), Roles(self._t), Tokens(self._t)
        self.checkpoints = Checkpoints(self._t)
        self.endpoints, self.inferences = Endpoints(self._t), Inferences(self._t)
        self.datasets, self.trainings = Datasets(self._t), Trainings(self._t)
        self.webhook_secret = WebhookSecrets(self._t)

    def ping(self) -> str:
        return self._t.call_full("GET", "/ping").get("message", "")

    def generate(
        self,
        task: str = "txt2img",
        payload: dict | None = None,
        *,
        prompt: str | None = None,
        models: dict[str, list[str]] | None = None,
        inference_type: str = "Async",
        endpoint_name: str | None = None,
        wait: bool = True,
        out_dir: str | Path | None = None,
        progress: Callable[[dict], None] | None = None,
        timeout: float = 1800,
        interval: float = 1.0,
        **options,
    ) -> Generation:
        """Run one job: `payload` as is, or a txt2img body built from `prompt` and `options`."""
        if payload is None:
            if prompt is None:
                raise ValueError("generate() needs a payload or a prompt")
            payload = txt2img_payload(prompt, **options)
        return self.inferences.run(
            task,
            payload,
            models or {},
            inference_type=inference_type,
            endpoint_name=endpoint_name,
            wait=wait,
            out_dir=out_dir,
            progress=progress,
            timeout=timeout,
            interval=interval,
        )

    def close(self) -> None:
        self._t.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
