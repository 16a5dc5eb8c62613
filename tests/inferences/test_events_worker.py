"""The events of a real job on the local engine with the tiny model: what its worker reports reaches the stream."""

from __future__ import annotations

import json

from tests.inferences.conftest import models_dir, server  # noqa: F401  (shared fixtures)
from tests.checkpoints.conftest import upload_file
from tests.support.esd_jobs import create_job, wait_job
from tests.support.generation_jobs import txt2img_payload

SD = {"Stable-diffusion": ["tiny-sd15.safetensors"], "VAE": ["Automatic"], "embeddings": []}


def test_a_real_job_streams_queued_scheduled_steps_and_succeeded(server):
    started = create_job(server, "txt2img", "esd-async-test", txt2img_payload(steps=4), SD, one_call=True)
    job_id = started.json()["data"]["inference"]["inference_id"]
    assert wait_job(server, job_id)["status"] == "succeed"
    found = read_events(server, job_id)
    kinds = [kind for kind, _ in found]
    assert kinds[:2] == ["queued", "scheduled"] and kinds[-2:] == ["image", "succeeded"], kinds
    steps = [data for kind, data in found if kind == "step"]
    assert steps and steps[-1]["step"] == steps[-1]["total"], steps  # the last step is always written
    assert [data["step"] for data in steps] == sorted(data["step"] for data in steps)


def read_events(server, job_id: str) -> list[tuple[str, dict]]:
    """(kind, data) of every event of a finished job, in order."""
    answer = server.get(f"/prod/inferences/{job_id}/events", user="api")
    frames = [dict(line.split(": ", 1) for line in b.splitlines() if ": " in line) for b in answer.text.split("\n\n")]
    return [(f["event"], json.loads(f["data"])) for f in frames if "event" in f]


def test_a_cold_start_reports_the_download_and_the_load_with_bytes_and_seconds(server, models_dir):
    """A checkpoint the instance never ran: `phase` events say which file is downloaded and loaded, its size
    and (at each phase's end) how long it took, before the first step; the next job on the warm model has none."""
    data = (models_dir / "tiny-sd15.safetensors").read_bytes()
    upload_file(server, "tiny-sd15-cold.safetensors", data, 1, "Stable-diffusion")
    models = {**SD, "Stable-diffusion": ["tiny-sd15-cold.safetensors"]}

    def events_of_a_job() -> list[tuple[str, dict]]:
        started = create_job(server, "txt2img", "esd-async-test", txt2img_payload(steps=2), models, one_call=True)
        job_id = started.json()["data"]["inference"]["inference_id"]
        assert wait_job(server, job_id)["status"] == "succeed"
        return read_events(server, job_id)

    found = events_of_a_job()
    phases = [(data["phase"], data["seconds"] is None) for kind, data in found if kind == "phase"]
    assert phases == [("downloading", True), ("downloading", False), ("loading", True), ("loading", False)], found
    for kind, event in found:
        if kind == "phase":
            assert event["model"] == "tiny-sd15-cold.safetensors" and event["bytes"] == len(data), event
            assert event["seconds"] is None or event["seconds"] >= 0, event
    kinds = [kind for kind, _ in found]
    assert kinds.index("scheduled") < kinds.index("phase") and max(
        i for i, kind in enumerate(kinds) if kind == "phase"
    ) < kinds.index("step"), kinds
    assert [kind for kind, _ in events_of_a_job()].count("phase") == 0  # warm: nothing to download or load
