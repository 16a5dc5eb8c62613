"""ControlNet units (sd-webui-controlnet's API) with a tiny A1111-layout ControlNet on the tiny SD 1.x model."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from openesd.generation.adapters import controlnet as cn
from openesd.generation.adapters.controlnet import prepare_units
from openesd.errors import GenerationError, ModelError, PayloadError
from tests.support import tiny_adapters as ta
from tests.support import tiny_models as tm

torch = pytest.importorskip("torch")
SIZE = 32


def square_png(size: int = 64, data_url: bool = False) -> str:
    """A white square on black: canny finds its outline."""
    pixels = np.zeros((size, size, 3), dtype=np.uint8)
    pixels[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 255
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return f"data:image/png;base64,{encoded}" if data_url else encoded


def unit(**overrides) -> dict:
    base = {
        "enabled": True,
        "module": "canny",
        "model": "tiny_canny [0123abcd]",
        "weight": 1.0,
        "image": square_png(),
        "resize_mode": "Crop and Resize",
        "control_mode": "Balanced",
        "guidance_start": 0.0,
        "guidance_end": 1.0,
        "threshold_a": 100,
        "threshold_b": 200,
        "processor_res": 64,
        "pixel_perfect": False,
    }
    return {**base, **overrides}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("controlnet")
    return {
        "ControlNet": [
            ta.write_tiny_controlnet(folder / "tiny_canny.safetensors"),
            ta.write_tiny_controlnet(folder / "other.safetensors", seed=12),
        ]
    }


@pytest.fixture(scope="module")
def components():
    return tm.tiny_sd15_components()


def render(components, inputs=None, seed=4):
    from diffusers import StableDiffusionControlNetPipeline, StableDiffusionPipeline

    common = {
        "prompt": "a square",
        "num_inference_steps": 2,
        "height": SIZE,
        "width": SIZE,
        "output_type": "np",
        "generator": torch.Generator().manual_seed(seed),
    }
    if inputs is None:
        return StableDiffusionPipeline(**components)(**common).images[0]
    pipe = StableDiffusionControlNetPipeline(**components, controlnet=inputs.controlnet)
    return pipe(**common, **inputs.kwargs).images[0]


def prepare(units, models, **kw):
    return prepare_units(units, models, SIZE, SIZE, "cpu", torch.float32, **kw)


def test_canny_unit_changes_the_image_and_weight_zero_does_not(components, models):
    baseline = render(components)
    controlled = render(components, prepare([unit()], models))
    at_zero = render(components, prepare([unit(weight=0.0)], models))
    assert np.abs(controlled - baseline).max() > 0.01
    np.testing.assert_allclose(at_zero, baseline, atol=1e-5)


def test_disabled_units_give_no_controlnet(models):
    # A real WebUI payload carries three disabled units with model "None" and no image.
    disabled = {"enabled": False, "module": "none", "model": "None", "weight": 1, "image": None}
    assert prepare([disabled, disabled, disabled], models) is None
    assert prepare([], models) is None


def test_canny_map_outlines_the_square_at_the_generation_size(models):
    inputs = prepare([unit(image=square_png(data_url=True))], models)
    control = np.asarray(inputs.kwargs["image"])
    assert control.shape == (SIZE, SIZE, 3)
    assert set(np.unique(control)) == {0, 255}
    assert control[SIZE // 2, SIZE // 2].max() == 0  # inside the square: no edge
    assert control[SIZE // 4 - 1 : SIZE // 4 + 1, SIZE // 2].max() == 255  # its top edge
    assert inputs.kwargs["controlnet_conditioning_scale"] == 1.0
    assert inputs.kwargs["guess_mode"] is False
    assert inputs.infotext == {
        "ControlNet 0": (
            '"Module: canny, Model: tiny_canny [0123abcd], Weight: 1.0, Resize Mode: Crop and Resize, '
            "Processor Res: 64, "
            "Threshold A: 100, Threshold B: 200, Guidance Start: 0.0, Guidance End: 1.0, Pixel Perfect: False, "
            'Control Mode: Balanced"'
        )
    }


def test_unknown_module_fails_naming_it_and_the_supported_ones(models):
    with pytest.raises(GenerationError, match=r"module 'no_such' is not supported; supported: none, invert, canny"):
        prepare([unit(module="no_such")], models)
    with pytest.raises(GenerationError, match=r"input_mode 'batch' is not supported"):
        prepare([unit(input_mode="batch")], models)
    assert prepare([unit(input_mode="simple", is_ui=True, low_vram=False, loopback=False)], models) is not None


def test_unknown_model_lists_the_available_files(models):
    with pytest.raises(
        ModelError, match=r"'control_sd15_depth' \(unit 0\) .*tiny_canny.safetensors, other.safetensors"
    ):
        prepare([unit(model="control_sd15_depth [fef5e48e]")], models)
    with pytest.raises(PayloadError, match="unit 0 is enabled but names no model"):
        prepare([unit(model="None")], models)


def test_missing_image_uses_the_init_image_or_fails(models):
    init = Image.new("RGB", (SIZE, SIZE), (200, 10, 10))
    inputs = prepare([unit(module="none", image=None)], models, init_image=init)
    assert np.asarray(inputs.kwargs["image"])[0, 0].tolist() == [200, 10, 10]
    with pytest.raises(PayloadError, match="unit 0 is enabled but has no image"):
        prepare([unit(image=None)], models)


def test_resize_modes_follow_the_extension(models):
    wide = Image.new("RGB", (64, 32), (0, 0, 0))
    wide.paste((255, 255, 255), (0, 0, 16, 32))  # white left quarter
    buffer = io.BytesIO()
    wide.save(buffer, format="PNG")
    image = base64.b64encode(buffer.getvalue()).decode()

    def control(mode):
        inputs = prepare([unit(module="none", image=image, resize_mode=mode)], models)
        return np.asarray(inputs.kwargs["image"])

    stretched, cropped, filled = control("Just Resize"), control(1), control("Resize and Fill")
    assert stretched.shape == cropped.shape == filled.shape == (SIZE, SIZE, 3)
    assert stretched[16, 0].min() == 255 and stretched[16, 7].min() == 255  # the quarter fills a quarter
    assert cropped[16, 0].max() == 0  # centre crop cuts the white quarter away
    assert filled[0, 0].max() == 0 and filled[16, 2].min() == 255  # letterboxed: padding above, white at the left
    with pytest.raises(PayloadError, match="resize_mode 'Stretch' is not valid"):
        control("Stretch")


def test_control_modes(components, models):
    balanced = prepare([unit()], models)
    assert balanced.kwargs["guess_mode"] is False
    balanced_image = render(components, balanced)
    prompt_first = prepare([unit(control_mode="My prompt is more important")], models)
    prompt_image = render(components, prompt_first)
    assert np.abs(prompt_image - balanced_image).max() > 1e-3
    # The cached ControlNet does not keep the previous job's mode.
    np.testing.assert_allclose(render(components, prepare([unit()], models)), balanced_image, atol=1e-6)
    assert prepare([unit(control_mode=2)], models).kwargs["guess_mode"] is True
    with pytest.raises(PayloadError, match="cannot be mixed"):
        prepare([unit(control_mode=2), unit(control_mode=0)], models)
    with pytest.raises(PayloadError, match="control_mode 'Loud' is not valid"):
        prepare([unit(control_mode="Loud")], models)


def test_two_units_run_as_a_multi_controlnet(components, models):
    from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel

    inputs = prepare([unit(), unit(model="other", module="none", weight=0.5, guidance_end=0.5)], models)
    assert isinstance(inputs.controlnet, MultiControlNetModel)
    assert inputs.kwargs["controlnet_conditioning_scale"] == [1.0, 0.5]
    assert inputs.kwargs["control_guidance_end"] == [1.0, 0.5]
    assert render(components, inputs).shape == (SIZE, SIZE, 3)


def test_controlnet_is_loaded_once(models, monkeypatch):
    loads = []
    real = cn.load_controlnet
    monkeypatch.setattr(cn, "load_controlnet", lambda path, dtype: loads.append(path) or real(path, dtype))
    cn._CACHE.clear()
    first = prepare([unit()], models).controlnet
    second = prepare([unit(weight=0.3)], models).controlnet
    assert first is second and len(loads) == 1


@pytest.mark.parametrize(
    ("family", "layout", "name"),
    [
        ("sd15", "a1111", "cn.safetensors"),
        ("sd15", "bare", "control_v11p.pth"),
        ("sd15", "diffusers", "cn.safetensors"),
        ("sdxl", "a1111", "cn.safetensors"),
        ("sdxl", "diffusers", "cn.safetensors"),
    ],
)
def test_loaded_weights_match_the_file_in_every_layout(tmp_path, family, layout, name):
    from openesd.generation.adapters._controlnet_loading import load_controlnet

    path = ta.write_tiny_controlnet(tmp_path / name, family=family, layout=layout)
    loaded = load_controlnet(path, torch.float32).state_dict()
    original = ta.tiny_controlnet(family=family).state_dict()
    assert loaded.keys() == original.keys()
    assert all(torch.equal(loaded[k], original[k]) for k in original)


def test_sdxl_controlnet_changes_the_sdxl_image(tmp_path):
    from diffusers import StableDiffusionXLControlNetPipeline, StableDiffusionXLPipeline

    files = {"ControlNet": [ta.write_tiny_controlnet(tmp_path / "xl_canny.safetensors", family="sdxl")]}
    inputs = prepare_units([unit(model="xl_canny")], files, 64, 64, "cpu", torch.float32)
    components = tm.tiny_sdxl_components()
    common = {"prompt": "a square", "num_inference_steps": 2, "height": 64, "width": 64, "output_type": "np"}
    plain = StableDiffusionXLPipeline(**components)(**common, generator=torch.Generator().manual_seed(4)).images[0]
    pipe = StableDiffusionXLControlNetPipeline(**components, controlnet=inputs.controlnet)
    controlled = pipe(**common, **inputs.kwargs, generator=torch.Generator().manual_seed(4)).images[0]
    assert np.abs(controlled - plain).max() > 0.01


def test_a_file_that_is_no_controlnet_is_refused(tmp_path):
    from openesd.generation.adapters._controlnet_loading import load_controlnet

    path = ta._save_safetensors(tmp_path / "lora.safetensors", ta.kohya_lora_state_dict())
    with pytest.raises(ModelError, match="'lora.safetensors' has no ControlNet weights"):
        load_controlnet(path, torch.float32)


def test_guidance_range_is_checked(models):
    with pytest.raises(PayloadError, match="guidance_start 0.8 and guidance_end 0.2"):
        prepare([unit(guidance_start=0.8, guidance_end=0.2)], models)


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_full_size_configs_are_detected_from_shapes_of_both_key_layouts(family):
    """Real SD 1.5 and SDXL ControlNets (built on the meta device, no weights) give back their configs."""
    from accelerate import init_empty_weights
    from diffusers import ControlNetModel

    from openesd.generation.adapters._controlnet_loading import (
        _ldm_shapes,
        controlnet_config,
        diffusers_controlnet_config,
    )

    config = {"block_out_channels": (320, 640, 1280, 1280), "cross_attention_dim": 768, "attention_head_dim": 8}
    if family == "sdxl":
        config = {
            "block_out_channels": (320, 640, 1280),
            "cross_attention_dim": 2048,
            "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            "attention_head_dim": (5, 10, 20),
            "transformer_layers_per_block": (1, 2, 10),
            "use_linear_projection": True,
            "addition_embed_type": "text_time",
            "addition_time_embed_dim": 256,
            "projection_class_embeddings_input_dim": 2816,
        }
    with init_empty_weights():
        net = ControlNetModel(**config)
    detected = controlnet_config(_ldm_shapes(ta.controlnet_to_ldm(net), "full.safetensors"))
    from_diffusers_keys = diffusers_controlnet_config({k: tuple(v.shape) for k, v in net.state_dict().items()})
    assert from_diffusers_keys == detected
    levels = len(net.config.block_out_channels)

    def per_level(value):  # diffusers stores "the same for every level" as one number
        return list(value) if isinstance(value, (list, tuple)) else [value] * levels

    for key, value in detected.items():
        if key != "_class_name":
            assert per_level(net.config[key]) == per_level(value), key


def test_mask_whitens_what_it_leaves_out_and_old_guessmode_is_understood(models):
    from openesd.generation.adapters._control_images import unit_image

    image = Image.new("RGB", (8, 8), (10, 20, 30))
    mask = Image.new("L", (8, 8), 0)
    mask.paste(255, (0, 0, 4, 8))  # left half kept
    as_b64 = [base64.b64encode(_png_bytes(i)).decode() for i in (image, mask)]
    for unit_dict in (
        {"image": {"image": as_b64[0], "mask": as_b64[1]}},
        {"image": as_b64[0], "mask_image": as_b64[1]},
    ):
        rgb = unit_image(unit_dict, 0, None)
        assert rgb[0, 0].tolist() == [10, 20, 30] and rgb[0, 7].tolist() == [255, 255, 255]
    old_style = {k: v for k, v in unit().items() if k != "control_mode"}
    assert prepare([{**old_style, "guessmode": True}], models).kwargs["guess_mode"] is True


def _png_bytes(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
