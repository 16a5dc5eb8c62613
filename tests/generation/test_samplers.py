"""Every A1111 sampler name either generates an image or fails with the list of valid names."""

from __future__ import annotations

import pytest

from openesd.generation import GenerationError
from openesd.generation.tasks.infotext import split_sampler
from openesd.generation.tasks.samplers import NO_EQUIVALENT, resolve, sampler_names, split_name
from tests.support.generation_jobs import png, run, txt2img_payload

WEBUI_NAMES = [
    "Euler",
    "Euler a",
    "LMS",
    "Heun",
    "DPM2",
    "DPM2 a",
    "DPM++ 2S a",
    "DPM++ 2M",
    "DPM++ SDE",
    "DPM++ 2M SDE",
    "DPM++ 2M SDE Heun",
    "DPM++ 3M SDE",
    "LMS Karras",
    "DPM2 Karras",
    "DPM2 a Karras",
    "DPM++ 2S a Karras",
    "DPM++ 2M Karras",
    "DPM++ SDE Karras",
    "DPM++ 2M SDE Karras",
    "DPM++ 2M SDE Exponential",
    "DPM++ 3M SDE Karras",
    "DPM++ 3M SDE Exponential",
    "DDIM",
    "PLMS",
    "UniPC",
    "LCM",
    "DDPM",
]


def test_combined_and_split_names_agree():
    assert split_name("DPM++ 2M Karras", None) == ("DPM++ 2M", "Karras")
    assert resolve("DPM++ 2M Karras") == resolve("DPM++ 2M", "Karras")
    assert resolve("Euler", "Exponential").options == {"use_exponential_sigmas": True}
    assert resolve("DPM++ 2M", "Automatic").options == {}


def test_every_listed_name_resolves():
    for name in sampler_names():
        resolve(name)


def test_unknown_sampler_lists_valid_names():
    with pytest.raises(GenerationError) as err:
        resolve("Euler b")
    assert "'Euler b'" in err.value.message and "DPM++ 2M Karras" in err.value.message


@pytest.mark.parametrize("name", sorted(NO_EQUIVALENT))
def test_unmappable_names_fail_clearly(name):
    kwargs = {"scheduler": name} if name[0] in "SNKAP" else {}
    with pytest.raises(GenerationError, match="not supported"):
        resolve("Euler" if kwargs else name, **kwargs)


@pytest.mark.parametrize("name", WEBUI_NAMES)
def test_each_sampler_generates(generator, sd15_models, name):
    steps = 4 if "3M" in name or name in ("PLMS", "UniPC") else 2
    result = run(generator, "txt2img", txt2img_payload(sampler_name=name, steps=steps), sd15_models)
    image = png(result.images[0])
    assert image.size == (64, 64)
    sampler, _ = split_sampler(name, None)  # the WebUI writes "DPM++ 2M Karras" as DPM++ 2M + Karras
    assert f"Sampler: {sampler}, Schedule type: " in image.text["parameters"]


def test_job_with_unknown_sampler_fails_before_loading(generator, sd15_models):
    with pytest.raises(GenerationError, match="Sampler 'Fancy' is not known"):
        run(generator, "txt2img", txt2img_payload(sampler_name="Fancy"), sd15_models)
