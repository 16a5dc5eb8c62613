"""ControlNet's inpaint modules with a tiny inpaint ControlNet: inpaint_only keeps every pixel outside the
(dilated, blurred) mask and repaints inside; the -1 control image; inpaint_only+lama refused by name."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from openesd.generation import GenerationError
from openesd.generation.adapters import _inpaint_control as inpaint
from tests.support import tiny_adapters as ta
from tests.support.generation_jobs import b64png, png, run, txt2img_payload


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(png(data).convert("RGB"), dtype=np.int16)


def photo() -> Image.Image:
    rng = np.random.default_rng(5)
    return Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))


def mask() -> Image.Image:
    image = Image.new("L", (64, 64), 0)
    image.paste(255, (24, 24, 40, 40))
    return image


def outside(blur: int = inpaint.BLUR_SIZE) -> np.ndarray:
    """Pixels the dilated-then-blurred mask does not reach: the 16x16 square grown by blur - 1 each side."""
    keep = np.ones((64, 64), dtype=bool)
    grow = blur - 1
    keep[24 - grow : 40 + grow, 24 - grow : 40 + grow] = False
    return keep


def unit(module: str = "inpaint_only", **extra) -> dict:
    return {
        "enabled": True,
        "module": module,
        "model": "control_v11p_sd15_inpaint [be8bc0ed]",
        "weight": 1.0,
        "image": b64png(photo()),
        "mask": b64png(mask()),
        "resize_mode": "Just Resize",
        **extra,
    }


def scripts(*units: dict) -> dict:
    return {"alwayson_scripts": {"controlnet": {"args": list(units)}}}


@pytest.fixture(scope="module")
def models(sd15_checkpoint, tmp_path_factory):
    net = ta.write_tiny_controlnet(tmp_path_factory.mktemp("inpaint") / "control_v11p_sd15_inpaint.safetensors")
    return {"Stable-diffusion": [sd15_checkpoint], "ControlNet": [net]}


@pytest.fixture(scope="module")
def outputs(generator, models) -> dict[str, np.ndarray]:
    """One txt2img job per module, shared by the tests that read them."""
    return {
        module: pixels(run(generator, "txt2img", txt2img_payload(**scripts(unit(module))), models).images[0])
        for module in ("inpaint_only", "inpaint_global_harmonious")
    }


def test_inpaint_only_keeps_the_unmasked_pixels_and_repaints_the_masked(outputs):
    out, source = outputs["inpaint_only"], np.asarray(photo(), dtype=np.int16)
    assert np.abs(out - source)[outside()].max() == 0  # max abs difference outside the blurred mask
    assert np.abs(out - source)[28:36, 28:36].mean() > 10  # the mask's core is generated


def test_global_harmonious_repaints_everywhere(outputs):
    source = np.asarray(photo(), dtype=np.int16)
    assert np.abs(outputs["inpaint_global_harmonious"] - source)[outside()].mean() > 10


def test_inpaint_only_restores_the_image_latent_outside_the_mask(generator, models):
    """The prediction's restore: the final latent outside the (dilated) latent mask is the image's own latent
    (the VAE's attention spreads any pixel difference, so this is measured before decoding)."""
    from openesd.generation.tasks.vae import encode_mean

    pipe = generator._load(models["Stable-diffusion"][0]).pipe
    origin = encode_mean(pipe, [photo()]).float() / pipe.vae.config.scaling_factor
    decoded: list = []
    handle = pipe.vae.post_quant_conv.register_forward_pre_hook(lambda module, args: decoded.append(args[0].clone()))
    try:
        for module in ("inpaint_only", "inpaint_global_harmonious"):
            run(generator, "txt2img", txt2img_payload(**scripts(unit(module))), models)
    finally:
        handle.remove()
    far = np.ones((32, 32), dtype=bool)
    far[10:22, 10:22] = False  # the 16 px square at latent 12..20, dilated by the extension's max-pool
    only, harmonious = (np.abs((latent.float() - origin)[0].numpy()).max(axis=0) for latent in decoded)
    assert only[far].max() < 1e-4
    assert harmonious[far].mean() > 0.1


def test_control_image_is_minus_one_where_masked():
    import base64
    import io

    def data(image: Image.Image) -> str:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return base64.b64encode(buffer.getvalue()).decode()

    spec = {"image": data(photo()), "mask": data(mask())}
    tensor, restore = inpaint.control_image(spec, 0, "inpaint_only", (None, None), 64, 64, 0)
    assert tensor.shape == (1, 3, 64, 64)
    assert float(tensor[0, :, 30, 30].max()) == -1.0
    expected = np.asarray(photo(), dtype=np.float32)[5, 5] / 255.0
    assert np.abs(tensor[0, :, 5, 5].numpy() - expected).max() < 1e-6
    assert restore is not None


def test_inpaint_without_a_mask_is_a_payload_error(generator, models):
    with pytest.raises(GenerationError, match="has no mask"):
        run(generator, "txt2img", txt2img_payload(**scripts(unit(mask=None))), models)


def test_lama_is_refused_naming_the_weights(generator, models):
    with pytest.raises(
        GenerationError, match=r"'inpaint_only\+lama' is not supported: it needs the LaMa weights big_lama"
    ):
        run(generator, "txt2img", txt2img_payload(**scripts(unit("inpaint_only+lama"))), models)


def test_img2img_inpaint_unit_uses_the_init_image_and_its_mask(generator, models):
    payload = txt2img_payload(
        init_images=[b64png(photo())], mask=b64png(mask()), denoising_strength=0.9, mask_blur=0, inpainting_fill=1
    )
    out = pixels(run(generator, "img2img", {**payload, **scripts(unit(image=None, mask=None))}, models).images[0])
    source = np.asarray(photo(), dtype=np.int16)
    assert np.abs(out - source)[outside()].max() == 0
    assert np.abs(out - source)[28:36, 28:36].mean() > 5


def reference_unit(**extra) -> dict:
    return {"enabled": True, "module": "reference_only", "model": "None", "image": b64png(photo()), **extra}


def test_reference_only_changes_the_latent_and_weight_zero_does_not(generator, models):
    """Measured on the final latent (the tiny random UNet's attention moves the 8-bit image by only a level or two)."""
    pipe = generator._load(models["Stable-diffusion"][0]).pipe
    latents: list = []
    handle = pipe.vae.post_quant_conv.register_forward_pre_hook(lambda module, args: latents.append(args[0].clone()))
    try:
        for scripts_ in ({}, scripts(reference_unit()), scripts(reference_unit(weight=0)), {}):
            run(generator, "txt2img", txt2img_payload(**scripts_), models)
    finally:
        handle.remove()
    plain, guided, zero, again = (latent.float() for latent in latents)
    assert float((guided - plain).abs().max()) > 1e-2
    assert float((zero - plain).abs().max()) == 0.0  # weight 0: no block stores the reference
    assert float((again - plain).abs().max()) == 0.0  # the next job runs on the plain UNet


def test_reference_attention_spares_the_negative_half_by_style_fidelity():
    """Fidelity 1: the negative rows get plain self-attention, the prompt's rows attend to the reference too."""
    import torch
    from diffusers.models.attention_processor import Attention, AttnProcessor2_0

    from openesd.generation.adapters import _reference

    torch.manual_seed(0)
    attn = Attention(query_dim=16, heads=2, dim_head=8)
    bank = _reference._Bank()
    processor = _reference._Processor(AttnProcessor2_0(), "block", 0.0, bank)
    tokens, reference = torch.randn(2, 6, 16), torch.randn(2, 6, 16)
    plain = AttnProcessor2_0()(attn, tokens)
    bank.mode, bank.stored, bank.fidelity = "read", {"block": reference}, 1.0
    bank.uncond_rows = torch.tensor([False, True])
    out = processor(attn, tokens)
    assert float((out[1] - plain[1]).abs().max()) < 1e-6
    assert float((out[0] - plain[0]).abs().max()) > 1e-3
    bank.fidelity = 0.0
    assert float((processor(attn, tokens)[1] - plain[1]).abs().max()) > 1e-3
