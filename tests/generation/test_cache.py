"""The worker keeps loaded checkpoints between jobs and evicts the least recently used within its budget."""

from __future__ import annotations

from pathlib import Path

from openesd.generation import GenerationRequest, Generator
from openesd.generation.models.cache import ModelCache
from tests.support.generation_jobs import run, txt2img_payload


class Blob:
    def __init__(self, size: int):
        self.size = size

    @property
    def components(self):
        import torch

        return {"w": torch.nn.Linear(self.size, 1, bias=False)}  # `size` float32 parameters


def test_lru_eviction_within_budget():
    cache = ModelCache(budget_bytes=4 * 250)
    for name in ("a", "b", "a", "c"):
        cache.get("checkpoint", Path(name), lambda: Blob(100))
    assert [Path(k[1]).name for k in cache.keys()] == ["a", "c"]  # b was least recently used
    assert (cache.loads, cache.hits) == (3, 1)


def test_an_entry_larger_than_the_budget_is_still_served():
    cache = ModelCache(budget_bytes=10)
    assert isinstance(cache.get("checkpoint", Path("big"), lambda: Blob(100)), Blob)


def test_second_job_reuses_the_loaded_checkpoint(sd15_models):
    generator = Generator(device="cpu")
    run(generator, "txt2img", txt2img_payload(), sd15_models)
    run(generator, "txt2img", txt2img_payload(seed=3, sampler_name="DDIM"), sd15_models)
    assert generator.cache.loads == 1


def test_switching_checkpoints_under_a_small_budget_evicts(sd15_checkpoint, sdxl_checkpoint):
    generator = Generator(device="cpu", cache_bytes=1)
    both = {"Stable-diffusion": [sd15_checkpoint, sdxl_checkpoint]}
    for name in (sd15_checkpoint.name, sdxl_checkpoint.name):
        payload = txt2img_payload(override_settings={"sd_model_checkpoint": name})
        generator.run(GenerationRequest("txt2img", payload, both))
    assert len(generator.cache.keys()) == 1 and generator.cache.loads == 2
