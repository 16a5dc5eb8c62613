"""IP-Adapter through a ControlNet unit, end to end with tiny random models: the image embeds change the
picture, weight 0 changes nothing, each CFG half gets its own embeds, and missing files are named."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from openesd.generation import GenerationError
from tests.support import tiny_ip_adapter as tip
from tests.support.generation_jobs import b64png, png, run, txt2img_payload


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(png(data).convert("RGB"), dtype=np.int16)


def reference() -> Image.Image:
    image = Image.new("RGB", (48, 40), (20, 40, 200))
    image.paste((250, 200, 10), (8, 8, 30, 30))
    return image


def ip_unit(**unit) -> dict:
    return {
        "enabled": True,
        "module": "ip-adapter_clip_sd15",
        "model": "ip-adapter_sd15 [a1b2c3d4]",
        "weight": 1.0,
        "image": b64png(reference()),
        **unit,
    }


def scripts(*units: dict) -> dict:
    return {"alwayson_scripts": {"controlnet": {"args": list(units)}}}


@pytest.fixture(scope="module")
def adapter_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ip-adapter")
    return {
        "ControlNet": [tip.write_ip_adapter(folder / "ip-adapter_sd15.safetensors")],
        "ControlNet-annotator": [tip.write_clip_vision(folder / "clip_h.pth")],
    }


@pytest.fixture
def models(sd15_models, adapter_files):
    return {**sd15_models, **adapter_files}


@pytest.fixture(scope="module")
def plain(generator, sd15_checkpoint):
    return pixels(run(generator, "txt2img", txt2img_payload(), {"Stable-diffusion": [sd15_checkpoint]}).images[0])


def test_ip_adapter_unit_changes_the_image(generator, models, plain):
    guided = pixels(run(generator, "txt2img", txt2img_payload(**scripts(ip_unit())), models).images[0])
    assert np.abs(guided - plain).max() > 2


def test_weight_zero_gives_exactly_the_job_without_the_unit(generator, models, plain):
    zero = pixels(run(generator, "txt2img", txt2img_payload(**scripts(ip_unit(weight=0))), models).images[0])
    assert np.abs(zero - plain).max() == 0


def test_the_next_job_without_the_unit_runs_on_the_plain_unet(generator, models, plain):
    run(generator, "txt2img", txt2img_payload(**scripts(ip_unit())), models)
    after = pixels(run(generator, "txt2img", txt2img_payload(), models).images[0])
    assert np.abs(after - plain).max() == 0


def test_guidance_range_outside_the_run_equals_no_unit(generator, models, plain):
    # Two Euler steps are at 0 and 1/2 of the run: a unit from 0.6 to 1.0 never acts.
    late = pixels(run(generator, "txt2img", txt2img_payload(**scripts(ip_unit(guidance_start=0.6))), models).images[0])
    assert np.abs(late - plain).max() == 0


def test_each_cfg_half_gets_its_own_image_embeds(generator, models, monkeypatch):
    """The UNet sees the image's embeds for the prompt and zeros (the adapter's uncond) for the negative."""
    from openesd.generation.adapters import _image_encoder as encoders

    seen: list = []
    real_embeds = encoders.embeds

    def spy(model, rgb, hidden_states):
        cond, uncond = real_embeds(model, rgb, hidden_states)
        seen.append(cond)
        return cond, uncond

    monkeypatch.setattr(encoders, "embeds", spy)
    calls: list = []
    loaded = generator._load(models["Stable-diffusion"][0])

    def hook(module, args, kwargs):
        embeds = kwargs["added_cond_kwargs"]["image_embeds"]
        calls.append(([e.clone() for e in embeds], kwargs["encoder_hidden_states"]))

    handle = loaded.pipe.unet.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        run(generator, "txt2img", txt2img_payload(**scripts(ip_unit())), models)
    finally:
        handle.remove()
    assert len(calls) == 2  # one batched cond+uncond call per Euler step
    embeds = calls[0][0][0]  # (2, 1, 48): the prompt's row first, then the negative's
    assert embeds.shape == (2, 1, tip.ENCODER_PROJECTION)
    assert float((embeds[0] - seen[0]).abs().max()) == 0.0
    assert float(embeds[1].abs().max()) == 0.0
    assert float(seen[0].abs().max()) > 0.0


def test_missing_image_encoder_names_the_file_to_upload(generator, sd15_models, adapter_files):
    models = {**sd15_models, "ControlNet": adapter_files["ControlNet"]}
    with pytest.raises(GenerationError, match=r"clip_h\.pth.*ControlNet-annotator"):
        run(generator, "txt2img", txt2img_payload(**scripts(ip_unit())), models)


def test_sdxl_encoder_module_without_clip_g_names_it(generator, models):
    with pytest.raises(GenerationError, match=r"clip_g\.pth"):
        run(generator, "txt2img", txt2img_payload(**scripts(ip_unit(module="ip-adapter_clip_sdxl"))), models)


def test_face_id_modules_are_refused_by_name(generator, models):
    with pytest.raises(GenerationError, match="'ip-adapter_face_id_plus' is not supported: it needs insightface"):
        run(generator, "txt2img", txt2img_payload(**scripts(ip_unit(module="ip-adapter_face_id_plus"))), models)


def test_pickled_bin_layout_loads_with_the_weights_only_loader(generator, sd15_models, adapter_files, tmp_path, plain):
    models = {
        **sd15_models,
        "ControlNet": [tip.write_ip_adapter(tmp_path / "ip-adapter_sd15.bin")],
        "ControlNet-annotator": adapter_files["ControlNet-annotator"],
    }
    guided = pixels(run(generator, "txt2img", txt2img_payload(**scripts(ip_unit())), models).images[0])
    assert np.abs(guided - plain).max() > 2


def test_img2img_unit_and_sd15_adapter_on_sdxl_is_refused(generator, sdxl_checkpoint, adapter_files):
    models = {"Stable-diffusion": [sdxl_checkpoint], **adapter_files}
    with pytest.raises(GenerationError, match="IP-Adapter 'ip-adapter_sd15.safetensors' is made for 32-wide"):
        run(generator, "txt2img", txt2img_payload(**scripts(ip_unit())), models)


def test_sdxl_ip_adapter_with_clip_g_changes_the_image(generator, sdxl_checkpoint, tmp_path):
    models = {
        "Stable-diffusion": [sdxl_checkpoint],
        "ControlNet": [tip.write_ip_adapter(tmp_path / "ip-adapter_xl.safetensors", family="sdxl")],
        "ControlNet-annotator": [tip.write_clip_vision(tmp_path / "clip_g.pth")],
    }
    unit = ip_unit(module="ip-adapter_clip_sdxl", model="ip-adapter_xl")
    plain = pixels(run(generator, "txt2img", txt2img_payload(), models).images[0])
    guided = pixels(run(generator, "txt2img", txt2img_payload(**scripts(unit)), models).images[0])
    assert np.abs(guided - plain).max() > 2


def test_hires_pass_keeps_the_image_prompt(generator, models):
    hires = {"enable_hr": True, "hr_scale": 1.5, "hr_upscaler": "Latent", "denoising_strength": 0.6}
    plain = pixels(run(generator, "txt2img", txt2img_payload(**hires), models).images[0])
    guided = pixels(run(generator, "txt2img", txt2img_payload(**hires, **scripts(ip_unit())), models).images[0])
    assert guided.shape == (96, 96, 3)
    assert np.abs(guided - plain).max() > 2


@pytest.mark.parametrize(
    ("hidden", "layers", "mlp", "projection", "act"),
    [(1280, 32, 5120, 1024, "gelu"), (1664, 48, 8192, 1280, "gelu"), (1024, 24, 4096, 768, "quick_gelu")],
    ids=["clip_h", "clip_g", "clip_vitl"],
)
def test_real_encoder_layouts_are_read_from_their_shapes(hidden, layers, mlp, projection, act):
    """The extension's clip_h / clip_g / clip_vitl configs, recovered from a state dict of their shapes (meta)."""
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from openesd.generation.adapters._image_encoder import encoder_config

    real = dict(
        hidden_size=hidden,
        intermediate_size=mlp,
        num_hidden_layers=layers,
        num_attention_heads=16,
        patch_size=14,
        image_size=224,
        projection_dim=projection,
        hidden_act=act,
    )
    with torch.device("meta"):
        model = CLIPVisionModelWithProjection(CLIPVisionConfig(**real))
    found = encoder_config(model.state_dict(), "clip.pth")
    assert {k: found[k] for k in real} == real
