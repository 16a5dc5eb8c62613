"""What one endpoint instance reports with a job's result: its model cache's loads and hits for `/metrics`."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace

from openesd.execution import _endpoint_process
from openesd.execution.base import JobSpec
from openesd.execution.events import JobSucceeded
from openesd.generation.models.cache import ModelCache
from tests.support.generation_jobs import txt2img_payload


class Pipe:
    def __init__(self):
        self.sent: list[object] = []

    def send(self, message: object) -> None:
        self.sent.append(message)

    def poll(self) -> bool:  # the engine sends nothing here (a cancel would come this way)
        return False


class CachingGenerator:
    """Loads the checkpoint through a real ModelCache, as the Generator does, and returns a blank result."""

    def __init__(self):
        self.cache = ModelCache()

    def run(self, request, progress):
        self.cache.get("checkpoint", "sd.safetensors", object)
        self.cache.get("vae-sd1", "vae.safetensors", object)
        return SimpleNamespace(images=[b"png"], parameters={}, info="{}", html_info="")


def test_each_result_carries_the_model_loads_and_cache_hits_of_its_job(tmp_path):
    generator, pipe = CachingGenerator(), Pipe()
    job = JobSpec(
        id="job-1", endpoint_id="e", task="txt2img", param_key="unused", payload_string=json.dumps(txt2img_payload())
    )
    _endpoint_process._serve(pipe, job, generator, store=None, models_dir=tmp_path)
    _endpoint_process._serve(pipe, replace(job, id="job-2"), generator, store=None, models_dir=tmp_path)
    done = [message for message in pipe.sent if isinstance(message, JobSucceeded)]
    assert [(m.job_id, m.result["worker"]) for m in done] == [
        ("job-1", {"model_loads": 2, "cache_hits": 0}),
        ("job-2", {"model_loads": 0, "cache_hits": 2}),
    ]
