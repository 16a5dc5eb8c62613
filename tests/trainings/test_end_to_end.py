"""From a folder of images to a LoRA that inference uses: real trainer processes on the CPU, tiny models.

One app for the module (worker processes are slow to start on a CPU): tiny SD 1.5- and SDXL-style base
models uploaded, one async endpoint for the inferences.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from openesd.execution.events import TrainingProgress
from tests.checkpoints.conftest import upload_file
from tests.datasets.conftest import kohya_files, upload_dataset
from tests.inferences.conftest import open_app
from tests.support.esd_jobs import create_endpoint, create_job, images, wait_job
from tests.support.generation_jobs import txt2img_payload
from tests.api.conftest import ESDClient
from tests.trainings.conftest import TINY, training_body, wait_training


class ProgressRecorder:
    """Wraps the engine's training events to keep every progress report the server received."""

    def __init__(self, events):
        self.events, self.reports = events, []

    def on_training(self, event):
        if isinstance(event, TrainingProgress):
            self.reports.append(event.progress)
        self.events.on_training(event)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[ESDClient]:
    from tests.support import tiny_models

    folder = tmp_path_factory.mktemp("tiny-models")
    client = open_app(tmp_path_factory.mktemp("server"))
    esd = ESDClient(client)
    for name, write in (
        ("tiny-sd15.safetensors", tiny_models.write_tiny_sd15_checkpoint),
        ("tiny-sdxl.safetensors", tiny_models.write_tiny_sdxl_checkpoint),
    ):
        upload_file(esd, name, write(folder / name).read_bytes(), 1, "Stable-diffusion")
    upload_dataset(esd, "cats", kohya_files(2), prefix="2_cat")
    runner = client.app.state.runtime.execution._trainings
    runner._events = ProgressRecorder(runner._events)
    assert create_endpoint(esd, endpoint_name="train")["endpoint_status"] == "InService"
    yield esd
    client.__exit__(None, None, None)


def generate(esd, base: str, prompt: str, lora: str | None = None, size: int = 64) -> bytes:
    models = {"Stable-diffusion": [base], "VAE": ["Automatic"], "embeddings": []}
    if lora:
        models["Lora"] = [lora]
    payload = txt2img_payload(steps=1, prompt=prompt, width=size, height=size, seed=5)
    started = create_job(esd, "txt2img", "esd-async-train", payload, models, one_call=True)
    assert started.status_code == 202, started.json()
    job = wait_job(esd, started.json()["data"]["inference"]["inference_id"])
    assert job["status"] == "succeed", job.get("sagemakerRaw")
    return images(esd, job)[0].tobytes()


@pytest.mark.parametrize(
    ("base", "fm_type", "output"),
    [("tiny-sd15.safetensors", "sd_1_5", "sks_cat15"), ("tiny-sdxl.safetensors", "sd_xl", "sks_catxl")],
)
def test_a_trained_lora_is_usable_in_inference_at_once(server, base, fm_type, output):
    recorder = server.http.app.state.runtime.execution._trainings._events
    body = training_body(output, base, "cats", fm_type, **TINY)
    body["params"]["config_params"]["training_arguments"]["max_train_epochs"] = 2
    created = server.post("/prod/trainings", user="api", json=body)
    assert created.status_code == 201, created.json()
    tid = created.json()["data"]["id"]
    done = wait_training(server, tid)
    assert done["job_status"] == "Completed", done["params"].get("resp")
    # 2 images x 2 repeats, batch 1: 4 steps an epoch, 8 in all; the server saw them advance.
    steps = [r["step"] for r in recorder.reports if r["total_steps"] == 8]
    assert steps == sorted(steps) and len(set(steps)) >= 3 and steps[-1] == 8
    assert done["progress"]["step"] == done["progress"]["total_steps"] == 8 and done["progress"]["epoch"] == 2
    recorder.reports.clear()
    [lora] = [c for c in server.get("/prod/checkpoints", user="api").json()["data"]["checkpoints"] if c["id"] == tid]
    assert lora["type"] == "Lora" and lora["status"] == "Active"
    assert lora["name"] == [f"{output}.safetensors", f"{output}-000001.safetensors"]
    store = server.http.app.state.store
    assert [o.key.rsplit("/", 1)[-1] for o in store.list(f"kohya/train/{tid}/output/")] == sorted(lora["name"])
    plain = generate(server, base, "sks cat", f"{output}.safetensors")
    with_lora = generate(server, base, f"sks cat <lora:{output}:1>", f"{output}.safetensors")
    assert plain != with_lora
