"""ControlNet units end to end through `Generator.run`, in txt2img and img2img payloads."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from openesd.generation import GenerationError
from tests.support import tiny_adapters as ta
from tests.support.generation_jobs import b64png, png, run, txt2img_payload


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(png(data).convert("RGB"), dtype=np.int16)


def square() -> Image.Image:
    image = Image.new("RGB", (64, 64))
    image.paste((255, 255, 255), (16, 16, 48, 48))
    return image


def controlnet_scripts(module: str = "canny", **unit) -> dict:
    disabled = {"enabled": False, "module": "none", "model": "None", "weight": 1, "image": None}
    enabled = {
        "enabled": True,
        "module": module,
        "model": "tiny_canny [0123abcd]",
        "weight": 1.0,
        "image": b64png(square()),
        "resize_mode": "Crop and Resize",
        "control_mode": "Balanced",
        "processor_res": 64,
        **unit,
    }
    return {"controlnet": {"args": [enabled, disabled, disabled]}}


@pytest.fixture
def models(sd15_models, tmp_path):
    return {**sd15_models, "ControlNet": [ta.write_tiny_controlnet(tmp_path / "tiny_canny.safetensors")]}


def test_controlnet_unit_changes_the_txt2img_image(generator, models):
    plain = run(generator, "txt2img", txt2img_payload(), models).images[0]
    controlled = run(generator, "txt2img", txt2img_payload(alwayson_scripts=controlnet_scripts()), models).images[0]
    assert png(controlled).size == (64, 64)
    assert np.abs(pixels(controlled) - pixels(plain)).max() > 2


def test_img2img_unit_without_image_uses_the_init_image(generator, models):
    payload = txt2img_payload(init_images=[b64png(square())], denoising_strength=0.75)
    plain = run(generator, "img2img", payload, models).images[0]
    scripts = controlnet_scripts(image=None)
    controlled = run(generator, "img2img", {**payload, "alwayson_scripts": scripts}, models).images[0]
    assert np.abs(pixels(controlled) - pixels(plain)).max() > 2


def test_unknown_controlnet_module_fails_listing_the_supported_ones(generator, models):
    with pytest.raises(GenerationError, match="module 'no_such' is not supported; supported: none, invert, canny"):
        run(generator, "txt2img", txt2img_payload(alwayson_scripts=controlnet_scripts("no_such")), models)
