"""Tiled Diffusion (the WebUI extension's MultiDiffusion / Mixture of Diffusers) on the tiny models: ESD's
argument order, refused extras, the tile grid against an independent reference, seams, sizes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from openesd.errors import PayloadError, UnsupportedFeature
from openesd.generation.payload.scripts import apply_scripts
from openesd.generation.payload.settings import read_settings
from openesd.generation.sampling.tiled import TiledModel, TileGrid
from tests.support.generation_jobs import b64png, info, png, run, txt2img_payload

METHODS = ("MultiDiffusion", "Mixture of Diffusers")
# The tiny VAE scales by 2, so a 32-latent tile is 64 pixels.
FACTOR = 2


def td_args(method="MultiDiffusion", tile=32, overlap=8, batch=4, **over):
    """The extension's positional `process()` args as ESD payloads send them."""
    values = {
        "enabled": True,
        "method": method,
        "overwrite_size": False,
        "keep_input_size": True,
        "image_width": 1024,
        "image_height": 1024,
        "tile_width": tile,
        "tile_height": tile,
        "overlap": overlap,
        "tile_batch_size": batch,
        "upscaler_name": "None",
        "scale_factor": 2.0,
        "noise_inverse": False,
        "noise_inverse_steps": 10,
        "noise_inverse_retouch": 1,
        "noise_inverse_renoise_strength": 1,
        "noise_inverse_renoise_kernel": 64,
        "control_tensor_cpu": False,
        "enable_bbox_control": False,
        "draw_background": False,
        "causal_layers": False,
    }
    values.update(over)
    return {"Tiled Diffusion": {"args": list(values.values())}}


def scripts_of(task="txt2img", **payload):
    extra = {"init_images": [b64png(_gradient(64, 64))]} if task == "img2img" else {}
    settings = read_settings(txt2img_payload(**extra, **payload), task)
    return settings, apply_scripts(settings)


def _gradient(width, height):
    from PIL import Image

    x = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None, None]
    pixels = np.concatenate([x + 0 * y, y + 0 * x, (x + y) / 2], axis=2).astype(np.uint8)
    return Image.fromarray(pixels)


# ---- payload ----------------------------------------------------------------------------------------


def test_positional_args_in_the_extensions_order():
    settings, scripts = scripts_of(alwayson_scripts=td_args("Mixture of Diffusers", tile=24, overlap=6, batch=3))
    tiled = scripts.tiled_diffusion
    assert (tiled.method, tiled.tile_width, tiled.tile_height, tiled.overlap, tiled.tile_batch_size) == (
        "Mixture of Diffusers",
        24,
        24,
        6,
        3,
    )
    assert (settings.width, settings.height) == (64, 64)  # overwrite_size off: the payload's size


def test_the_2023_order_with_noise_inversion_after_the_method():
    # enabled, method, noise_inverse, steps, retouch, renoise strength, kernel, overwrite_image_size, ...
    args = [True, "MultiDiffusion", False, 10, 1, 1, 64, False, True, 1024, 1024, 48, 40, 16, 2, "None", 2.0, False]
    _, scripts = scripts_of(alwayson_scripts={"Tiled Diffusion": {"args": args}})
    tiled = scripts.tiled_diffusion
    assert (tiled.tile_width, tiled.tile_height, tiled.overlap, tiled.tile_batch_size) == (48, 40, 16, 2)


def test_object_form_and_overwrite_size():
    args = {"enabled": True, "method": "MultiDiffusion", "overwrite_image_size": True, "image_width": 256}
    args |= {"image_height": 192, "tile_width": 16, "tile_height": 16, "overlap": 4, "batch_size": 2}
    settings, scripts = scripts_of(alwayson_scripts={"tiled diffusion": {"args": [args]}})
    assert (settings.width, settings.height) == (256, 192)
    assert scripts.tiled_diffusion.tile_batch_size == 2


def test_disabled_is_ignored():
    _, scripts = scripts_of(alwayson_scripts=td_args(enabled=False, method="Nonsense"))
    assert scripts.tiled_diffusion is None


@pytest.mark.parametrize(
    ("over", "named"),
    [
        ({"method": "DemoFusion"}, "'DemoFusion'"),
        ({"tile_width": "wide"}, "tile_width"),
        ({"overlap": -1}, "overlap"),
        ({"tile_batch_size": 0}, "tile_batch_size"),
        ({"overwrite_size": True, "image_width": 1001}, "image_width"),
    ],
)
def test_bad_values_name_the_argument(over, named):
    with pytest.raises(PayloadError, match=named) as caught:
        scripts_of(alwayson_scripts=td_args(**over))
    if "method" in over:
        assert "MultiDiffusion, Mixture of Diffusers" in str(caught.value)


def test_unknown_object_key_is_named():
    with pytest.raises(PayloadError, match="tile_size"):
        scripts_of(alwayson_scripts={"Tiled Diffusion": {"args": [{"enabled": True, "tile_size": 8}]}})


def test_region_control_and_noise_inversion_are_refused():
    with pytest.raises(UnsupportedFeature, match="enable_bbox_control"):
        scripts_of(alwayson_scripts=td_args(enable_bbox_control=True))
    with pytest.raises(UnsupportedFeature, match="noise_inverse"):
        scripts_of("img2img", alwayson_scripts=td_args(noise_inverse=True))
    # txt2img: the extension ignores noise inversion, so it changes nothing here either.
    _, scripts = scripts_of(alwayson_scripts=td_args(noise_inverse=True))
    assert scripts.tiled_diffusion is not None


def test_controlnet_with_tiling_is_refused_unless_one_tile_covers_the_image():
    from types import SimpleNamespace

    from openesd.generation.tasks import tiled_diffusion

    model = SimpleNamespace(vae_scale_factor=FACTOR)
    settings, scripts = scripts_of(width=128, height=64, alwayson_scripts=td_args(tile=32, overlap=8))
    with pytest.raises(UnsupportedFeature, match="Tiled Diffusion with ControlNet"):
        tiled_diffusion.attach(None, model, settings, scripts, None, controlnet=object())
    settings, scripts = scripts_of(alwayson_scripts=td_args(tile=32, overlap=8))  # 64x64: one tile
    tiled_diffusion.attach(None, model, settings, scripts, None, controlnet=object())  # untiled, as the extension


# ---- the tile grid and blending against an independent reference ---------------------------------------


def test_grid_is_the_extensions():
    grid = TileGrid.build(96, 64, 32, 32, 8, 5, "MultiDiffusion")
    # cols = ceil((96 - 8) / 24) = 4 spread over 64 columns: 0, 21, 42, 64; rows: ceil(56 / 24) = 3: 0, 16, 32.
    assert grid.tiles == [(x, y) for y in (0, 16, 32) for x in (0, 21, 42, 64)]
    assert [len(b) for b in grid.batches] == [4, 4, 4]  # 12 tiles, batch 5 -> 3 batches of the optimal 4
    assert float(grid.coverage().min()) >= 1.0
    # An overlap not below the tile is capped at the tile minus 4, as the extension does.
    assert TileGrid.build(40, 8, 8, 8, 8, 1, "MultiDiffusion").tiles == [
        (x, 0) for x in (0, 4, 8, 12, 16, 20, 24, 28, 32)
    ]


def reference(unet, x, t, kwargs, tiles, tile, method):
    """MultiDiffusion / Mixture of Diffusers written out directly: every tile alone, weighted, normalised."""
    import torch

    out, total = torch.zeros_like(x[:, :4]), torch.zeros(x.shape[-2:])
    if method == "MultiDiffusion":
        weight = torch.ones(tile, tile)
    else:
        xs, ys = torch.arange(tile, dtype=torch.float64), torch.arange(tile, dtype=torch.float64)
        gx = torch.exp(-((xs - (tile - 1) / 2) ** 2) / tile**2 / 0.02) / math.sqrt(2 * math.pi * 0.01)
        gy = torch.exp(-((ys - tile / 2) ** 2) / tile**2 / 0.02) / math.sqrt(2 * math.pi * 0.01)
        weight = torch.outer(gy, gx).float()
    for x0, y0 in tiles:
        box = (..., slice(y0, y0 + tile), slice(x0, x0 + tile))
        out[box] += unet(x[box], t, return_dict=False, **kwargs)[0] * weight
        total[box[1:]] += weight
    return out / total


@pytest.fixture(scope="module")
def unets():
    from tests.support import tiny_models as tm

    return {"sd15": tm.tiny_unet("sd15").eval(), "sdxl": tm.tiny_unet("sdxl").eval()}


def unet_inputs(unets, family, batch=2):
    import torch

    from tests.support import tiny_models as tm

    unet = unets[family]
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(batch, 4, 24, 32, generator=generator)
    kwargs = {"encoder_hidden_states": torch.randn(batch, 77, unet.config.cross_attention_dim, generator=generator)}
    if family == "sdxl":  # the whole image's pooled text and time ids go to every tile
        pooled = torch.randn(batch, tm.SDXL_POOLED_DIM, generator=generator)
        time_ids = torch.tensor([[48.0, 64.0, 0.0, 0.0, 48.0, 64.0]]).repeat(batch, 1)
        kwargs["added_cond_kwargs"] = {"text_embeds": pooled, "time_ids": time_ids}
    return unet, x, torch.tensor([700.0] * batch), kwargs


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
@pytest.mark.parametrize("method", ["MultiDiffusion", "Mixture of Diffusers"])
def test_blend_equals_a_reference_implementation(unets, family, method):
    import torch

    unet, x, t, kwargs = unet_inputs(unets, family)
    grid = TileGrid.build(32, 24, 16, 16, 6, 3, method)
    with torch.no_grad():
        ours = TiledModel(grid)(unet, x, t, kwargs)
        expected = reference(unet, x, t, kwargs, grid.tiles, 16, method)
    difference = float((ours - expected).abs().max())
    assert difference < 2e-5, difference
    assert float(expected.abs().mean()) > 0.1  # the comparison is of real predictions


def test_methods_differ_only_where_tiles_overlap(unets):
    import torch

    unet, x, t, kwargs = unet_inputs(unets, "sd15")
    grids = {m: TileGrid.build(32, 24, 16, 16, 6, 4, m) for m in METHODS}
    with torch.no_grad():
        md, mod = (TiledModel(g)(unet, x, t, kwargs) for g in grids.values())
    overlap = grids["MultiDiffusion"].coverage() > 1
    gap = (md - mod).abs()
    assert float(gap[..., ~overlap].max()) < 1e-5
    assert float(gap[..., overlap].mean()) > 1e-3


def test_one_tile_equals_the_plain_call(unets):
    import torch

    unet, x, t, kwargs = unet_inputs(unets, "sdxl")
    with torch.no_grad():
        plain = unet(x, t, return_dict=False, **kwargs)[0]
        md, mod = (TiledModel(TileGrid.build(32, 24, 64, 64, 8, 1, m))(unet, x, t, kwargs) for m in METHODS)
    assert torch.equal(md, plain)
    # Mixture of Diffusers multiplies by its gaussian and its inverse: equal to the float32 rounding.
    assert float((mod - plain).abs().max()) < 1e-6


# ---- jobs ---------------------------------------------------------------------------------------------


def seam_ratio(image, edges):
    """Mean absolute difference between neighbouring pixel columns at the tile edges over that of all columns."""
    pixels = np.asarray(image, dtype=np.float32)
    steps = np.abs(np.diff(pixels, axis=1)).mean(axis=(0, 2))
    return float(np.mean([steps[e - 1] for e in edges]) / steps.mean())


def test_txt2img_larger_than_a_tile_matches_a_reference_and_joins_without_seams(generator, sd15_models, monkeypatch):
    payload = txt2img_payload(width=128, height=96, steps=2, alwayson_scripts=td_args(tile=32, overlap=8))
    calls = []
    tiled_call = TiledModel.__call__

    def counted(self, *args):
        calls.append(self.grid.tiles)
        return tiled_call(self, *args)

    monkeypatch.setattr(TiledModel, "__call__", counted)
    result = run(generator, "txt2img", payload, sd15_models)
    image = png(result.images[0])
    assert image.size == (128, 96)
    # Euler, 2 steps, CFG: one batched cond+uncond call per step, each over the 3 x 2 tiles of a 64x48 latent.
    assert calls == [[(x, y) for y in (0, 16) for x in (0, 16, 32)]] * 2
    entry = info(result)["extra_generation_params"]["Tiled Diffusion"]
    assert entry == {
        "Method": "MultiDiffusion",
        "Tile tile width": 32,
        "Tile tile height": 32,
        "Tile Overlap": 8,
        "Tile batch size": 4,
    }
    assert 'Tiled Diffusion: {"Method": "MultiDiffusion", ' in image.info["parameters"]

    # The same job with the tiles computed by the test's own reference: the images agree.
    def reference_call(self, unet, x, t, kwargs):
        if tuple(x.shape[-2:]) != (self.grid.height, self.grid.width):
            return unet(x, t, return_dict=False, **kwargs)[0]
        return reference(unet, x, t, kwargs, self.grid.tiles, 32, self.grid.method)

    monkeypatch.setattr(TiledModel, "__call__", reference_call)
    expected = png(run(generator, "txt2img", payload, sd15_models).images[0])
    assert np.abs(np.asarray(image, np.int16) - np.asarray(expected, np.int16)).max() <= 1

    # Seams: at the tile edges (latent columns 16, 32, 48 -> pixels x2) the image changes no more than elsewhere.
    edges = sorted({FACTOR * e for x0 in (0, 16, 32) for e in (x0, x0 + 32) if 0 < e < 64})
    assert seam_ratio(image, edges) < 1.25, seam_ratio(image, edges)


def test_one_tile_job_is_the_untiled_job(generator, sd15_models):
    base = txt2img_payload(width=64, height=64)
    tiled = run(generator, "txt2img", {**base, "alwayson_scripts": td_args(tile=32, overlap=8)}, sd15_models)
    plain = run(generator, "txt2img", base, sd15_models)
    assert tiled.images[0] == plain.images[0]  # same bytes: no tiling and no infotext entry, as the extension


def test_hires_pass_runs_untiled_as_the_extension(generator, sd15_models, monkeypatch):
    shapes = []
    tiled_call = TiledModel.__call__

    def recorded(self, unet, x, *args):
        shapes.append(tuple(x.shape[-2:]))
        return tiled_call(self, unet, x, *args)

    monkeypatch.setattr(TiledModel, "__call__", recorded)
    scripts = td_args(tile=32, overlap=8)
    payload = txt2img_payload(width=128, height=64, enable_hr=True, hr_scale=1.5, denoising_strength=0.5)
    image = png(run(generator, "txt2img", {**payload, "alwayson_scripts": scripts}, sd15_models).images[0])
    assert image.size == (192, 96)
    assert shapes == [(32, 64)] * 2  # the 2 first-pass steps only; the hires pass calls its UNet directly
    text = image.info["parameters"]
    assert text.index("Tiled Diffusion: {") < text.index("Hires upscale: 1.5")  # the WebUI's order


def test_sdxl_txt2img_tiles(generator, sdxl_checkpoint):
    models = {"Stable-diffusion": [sdxl_checkpoint]}
    scripts = td_args("Mixture of Diffusers", tile=24, overlap=8)
    result = run(generator, "txt2img", txt2img_payload(width=64, height=96, steps=2, alwayson_scripts=scripts), models)
    assert png(result.images[0]).size == (64, 96)
    assert info(result)["extra_generation_params"]["Tiled Diffusion"]["Method"] == "Mixture of Diffusers"


def test_img2img_upscales_before_diffusing(generator, sd15_models):
    scripts = td_args(tile=16, overlap=4, upscaler_name="Lanczos", scale_factor=2.0, keep_input_size=True)
    payload = txt2img_payload(init_images=[b64png(_gradient(48, 32))], denoising_strength=0.5, alwayson_scripts=scripts)
    result = run(generator, "img2img", payload, sd15_models)
    assert png(result.images[0]).size == (96, 64)  # the upscaled image's size, not the payload's 64x64
    entry = info(result)["extra_generation_params"]["Tiled Diffusion"]
    assert (entry["Upscaler"], entry["Upscale factor"], entry["Keep input size"]) == ("Lanczos", 2.0, True)


@pytest.mark.parametrize(
    ("upscaler", "keep", "size"),
    [
        ("Lanczos", True, (200, 144)),
        ("Lanczos", False, (128, 128)),
        ("None", True, (96, 72)),
        ("None", False, (64, 64)),
    ],
)
def test_img2img_sizes(upscaler, keep, size):
    from types import SimpleNamespace

    from openesd.generation.tasks.tiled_diffusion import upscale_inputs

    settings, scripts = scripts_of("img2img", alwayson_scripts=td_args(upscaler_name=upscaler, keep_input_size=keep))
    ctx = SimpleNamespace(models={}, upscalers=None)
    images = upscale_inputs([_gradient(100, 75), _gradient(8, 8)], settings, scripts.tiled_diffusion, ctx)
    # keep_input_size: the (upscaled) image's size floored to 8; otherwise the payload's 64x64 times the factor.
    assert (settings.width, settings.height) == size
    if upscaler != "None":
        assert [im.size for im in images] == [(200, 150)] * 2  # the first image, upscaled, for every init image


def test_img2img_unknown_upscaler_names_it(generator, sd15_models):
    scripts = td_args(upscaler_name="4x-Nowhere")
    payload = txt2img_payload(init_images=[b64png(_gradient(64, 64))], denoising_strength=0.5, alwayson_scripts=scripts)
    with pytest.raises(Exception, match="4x-Nowhere"):
        run(generator, "img2img", payload, sd15_models)
