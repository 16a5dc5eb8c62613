"""The Tiled Diffusion extension's part of a txt2img/img2img job: img2img's upscale before diffusing, the
tile grid on the pass's CFG denoiser, and its infotext entry (the sampling itself: sampling/tiled.py)."""

from __future__ import annotations

from typing import Any

from PIL import Image

from openesd.errors import PayloadError, UnsupportedFeature
from openesd.generation.payload.settings import MAX_SIDE, GenerationSettings
from openesd.generation.payload.tiled_diffusion import TiledDiffusionSettings


def upscale_inputs(
    images: list[Image.Image], settings: GenerationSettings, tiled: TiledDiffusionSettings, ctx: Any
) -> list[Image.Image]:
    """img2img as the extension's `process()`: the first init image, flattened, upscaled by the named
    upscaler and `scale_factor`, stands for every init image; keep_input_size makes the job's size the
    image's, otherwise an upscale scales the job's size by the factor. Sizes are floored to a multiple of
    8, the size the WebUI's latent decodes to."""
    from openesd.generation.tasks.upscalers import upscale

    image = _flatten(images[0])
    if tiled.upscaler_name != "None":
        image = upscale(image, tiled.upscaler_name, tiled.scale_factor, ctx.models, ctx.upscalers)
        images = [image] * len(images)
    if tiled.keep_input_size:
        width, height = image.width, image.height
    elif tiled.upscaler_name != "None":
        width, height = int(tiled.scale_factor * settings.width), int(tiled.scale_factor * settings.height)
    else:
        return images
    width, height = width // 8 * 8, height // 8 * 8
    if not (64 <= width <= MAX_SIDE and 64 <= height <= MAX_SIDE):
        raise PayloadError(
            f"Tiled Diffusion makes the image {width}x{height}; each side must be from 64 to {MAX_SIDE} "
            "(check scale_factor and keep_input_size)"
        )
    settings.width, settings.height = width, height
    return images


def _flatten(image: Image.Image) -> Image.Image:
    """The WebUI's `images.flatten` on its default img2img background colour (white)."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def attach(run: Any, model: Any, settings: GenerationSettings, scripts: Any, ctx: Any, controlnet: Any) -> None:
    """Tile the pass's UNet calls when the image needs more than one tile (the extension leaves a one-tile
    image untiled and writes nothing), and write the extension's infotext entry."""
    from openesd.generation.sampling.tiled import TiledModel, TileGrid, splitable

    tiled: TiledDiffusionSettings | None = scripts.tiled_diffusion
    if tiled is None:
        return
    factor = model.vae_scale_factor
    size = (settings.width, settings.height)
    if not splitable(*size, tiled.tile_width, tiled.tile_height, tiled.overlap, factor):
        return
    if controlnet is not None:
        raise UnsupportedFeature(
            "Tiled Diffusion with ControlNet is not supported (the extension crops each control image per "
            "tile, which diffusers' ControlNet pipelines cannot); disable one of them or use one tile"
        )
    grid = TileGrid.build(
        settings.width // factor,
        settings.height // factor,
        tiled.tile_width,
        tiled.tile_height,
        tiled.overlap,
        tiled.tile_batch_size,
        tiled.method,
    )
    run.unet.tile_with(TiledModel(grid))
    # The extension's process() runs before the WebUI adds the hires and LoRA entries: its entry comes first.
    entry = infotext_entry(tiled, is_img2img=bool(settings.init_images))
    ctx.extra_params = {"Tiled Diffusion": entry, **ctx.extra_params}


def infotext_entry(tiled: TiledDiffusionSettings, is_img2img: bool) -> dict[str, Any]:
    """The extension's `Tiled Diffusion` infotext value (its own key names)."""
    info: dict[str, Any] = {
        "Method": tiled.method,
        "Tile tile width": tiled.tile_width,
        "Tile tile height": tiled.tile_height,
        "Tile Overlap": tiled.overlap,
        "Tile batch size": tiled.tile_batch_size,
    }
    if is_img2img:
        if tiled.upscaler_name != "None":
            info.update({"Upscaler": tiled.upscaler_name, "Upscale factor": tiled.scale_factor})
        if tiled.keep_input_size:
            info["Keep input size"] = True
    return info
