"""The events of a real job on the local engine with the tiny model: what its worker reports reaches the stream."""

from __future__ import annotations

import json

from tests.inferences.conftest import models_dir, server  # noqa: F401  (shared fixtures)
from tests.support.esd_jobs import create_job, wait_job
from tests.support.generation_jobs import txt2img_payload

SD = {"Stable-diffusion": ["tiny-sd15.safetensors"], "VAE": ["Automatic"], "embeddings": []}


def test_a_real_job_streams_queued_scheduled_steps_and_succeeded(server):
    started = create_job(server, "txt2img", "esd-async-test", txt2img_payload(steps=4), SD, one_call=True)
    job_id = started.json()["data"]["inference"]["inference_id"]
    assert wait_job(server, job_id)["status"] == "succeed"
    answer = server.get(f"/prod/inferences/{job_id}/events", user="api")
    frames = [dict(line.split(": ", 1) for line in b.splitlines() if ": " in line) for b in answer.text.split("\n\n")]
    found = [(f["event"], json.loads(f["data"])) for f in frames if "event" in f]
    kinds = [kind for kind, _ in found]
    assert kinds[:2] == ["queued", "scheduled"] and kinds[-2:] == ["image", "succeeded"], kinds
    steps = [data for kind, data in found if kind == "step"]
    assert steps and steps[-1]["step"] == steps[-1]["total"], steps  # the last step is always written
    assert [data["step"] for data in steps] == sorted(data["step"] for data in steps)
