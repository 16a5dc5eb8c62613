"""T2I-Adapter models in ControlNet units with a tiny full adapter: the features change the image, weight 0
equals the job without the unit, and TencentARC's original keys load like diffusers' keys."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from openesd.generation.adapters import t2i_adapter
from tests.support import tiny_ip_adapter as tip
from tests.support.generation_jobs import b64png, png, run, txt2img_payload


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(png(data).convert("RGB"), dtype=np.int16)


def sketch() -> Image.Image:
    image = Image.new("RGB", (64, 64))
    image.paste((255, 255, 255), (10, 20, 54, 30))
    return image


def unit(**extra) -> dict:
    return {
        "enabled": True,
        "module": "none",
        "model": "t2iadapter_sketch_sd14v1",
        "weight": 1.0,
        "image": b64png(sketch()),
        "resize_mode": "Just Resize",
        **extra,
    }


def scripts(*units: dict) -> dict:
    return {"alwayson_scripts": {"controlnet": {"args": list(units)}}}


@pytest.fixture(scope="module")
def models(sd15_checkpoint, tmp_path_factory):
    folder = tmp_path_factory.mktemp("t2i")
    return {
        "Stable-diffusion": [sd15_checkpoint],
        "ControlNet": [tip.write_t2i_adapter(folder / "t2iadapter_sketch_sd14v1.pth")],
    }


@pytest.fixture(scope="module")
def plain(generator, models):
    return pixels(run(generator, "txt2img", txt2img_payload(), models).images[0])


def test_t2i_adapter_changes_the_image(generator, models, plain):
    guided = pixels(run(generator, "txt2img", txt2img_payload(**scripts(unit())), models).images[0])
    assert np.abs(guided - plain).max() > 2


def test_weight_zero_equals_the_job_without_the_unit(generator, models, plain):
    zero = pixels(run(generator, "txt2img", txt2img_payload(**scripts(unit(weight=0))), models).images[0])
    assert np.abs(zero - plain).max() == 0


def test_original_and_diffusers_keys_give_the_same_adapter(models, tmp_path):
    import torch

    unet = tip.tm.tiny_unet("sd15")
    diffusers_file = tip.write_t2i_adapter(tmp_path / "t2i_diffusers.safetensors")
    original_file = models["ControlNet"][0]
    assert t2i_adapter.is_adapter(original_file) and t2i_adapter.is_adapter(diffusers_file)
    a, b = t2i_adapter.load_adapter(original_file, unet), t2i_adapter.load_adapter(diffusers_file, unet)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        features = list(zip(a(x), b(x)))
    assert [f.shape[1] for f, _ in features] == list(tip.tm.SD15_UNET_CHANNELS)
    assert max(float((f - g).abs().max()) for f, g in features) == 0.0


def test_a_controlnet_file_is_not_taken_for_an_adapter(tmp_path):
    from tests.support import tiny_adapters as ta

    assert not t2i_adapter.is_adapter(ta.write_tiny_controlnet(tmp_path / "control_canny.safetensors"))
