"""Every A1111 sampler name either generates an image or fails with the list of valid names."""

from __future__ import annotations

import re

import pytest

from openesd.generation import GenerationError
from openesd.generation.tasks.infotext import split_sampler
from openesd.generation.sampling.samplers import REFUSED, SAMPLERS, resolve
from tests.support.generation_jobs import png, run, txt2img_payload

# Every sampler of the WebUI 1.10, old combined names (sampler + schedule) too.
WEBUI_NAMES = [
    *SAMPLERS,
    "LMS Karras",
    "DPM2 a Karras",
    "DPM++ 2M Karras",
    "DPM++ SDE Karras",
    "DPM++ 2M SDE Exponential",
    "DPM++ 3M SDE Karras",
]


def test_combined_and_split_names_agree():
    assert resolve("DPM++ 2M Karras", None) == resolve("DPM++ 2M", "Karras")
    assert resolve("k_euler_a", None)[0].name == "Euler a"


def test_unknown_sampler_lists_valid_names():
    with pytest.raises(GenerationError) as err:
        resolve("Euler b", None)
    assert "'Euler b'" in err.value.message and "DPM++ 2M" in err.value.message


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_samplers_are_named_with_the_reason(generator, sd15_models, name):
    with pytest.raises(GenerationError, match=re.escape(name)):
        run(generator, "txt2img", txt2img_payload(sampler_name=name, steps=2), sd15_models)


@pytest.mark.parametrize("name", WEBUI_NAMES)
def test_each_sampler_generates(generator, sd15_models, name):
    steps = 4 if "3M" in name or name in ("PLMS", "UniPC", "DDIM") else 2
    result = run(generator, "txt2img", txt2img_payload(sampler_name=name, steps=steps), sd15_models)
    image = png(result.images[0])
    assert image.size == (64, 64)
    sampler, _ = split_sampler(name, None)  # the WebUI writes "DPM++ 2M Karras" as DPM++ 2M + Karras
    assert f"Sampler: {sampler}, Schedule type: " in image.text["parameters"]


def test_job_with_unknown_sampler_fails_before_loading(generator, sd15_models):
    with pytest.raises(GenerationError, match="'Fancy'"):
        run(generator, "txt2img", txt2img_payload(sampler_name="Fancy"), sd15_models)
