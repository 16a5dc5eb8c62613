"""Hires fix: enlarge the first pass (in latent space or with an image upscaler) and denoise it again."""

from __future__ import annotations

from typing import Any

from openesd.errors import PayloadError
from openesd.generation.job import PreparedModel
from openesd.generation.tasks.vae import decode_latents, encode_mean, to_pil
from openesd.generation.payload.settings import GenerationSettings, HiresSettings
from openesd.generation.tasks import seeds

# A1111's latent upscale modes: name -> (torch interpolate mode, antialias).
LATENT_MODES = {
    "Latent": ("bilinear", False),
    "Latent (antialiased)": ("bilinear", True),
    "Latent (bicubic)": ("bicubic", False),
    "Latent (bicubic antialiased)": ("bicubic", True),
    "Latent (nearest)": ("nearest", False),
    "Latent (nearest-exact)": ("nearest-exact", False),
}


def target_size(settings: GenerationSettings, hr: HiresSettings) -> tuple[int, int]:
    """(width, height) of the second pass, as A1111 computes it from hr_scale or hr_resize_x/y."""
    w, h = settings.width, settings.height
    if hr.resize_x == 0 and hr.resize_y == 0:
        tw, th = int(w * hr.scale), int(h * hr.scale)
    elif hr.resize_y == 0:
        tw, th = hr.resize_x, hr.resize_x * h // w
    elif hr.resize_x == 0:
        tw, th = hr.resize_y * w // h, hr.resize_y
    else:
        tw, th = hr.resize_x, hr.resize_y
    tw, th = tw // 8 * 8, th // 8 * 8
    if tw < 64 or th < 64:
        raise PayloadError(f"hires fix target size {tw}x{th} is smaller than 64x64")
    return tw, th


def hires_params(settings: GenerationSettings) -> dict[str, Any]:
    hr = settings.hires
    tw, th = target_size(settings, hr)
    scaled = hr.resize_x == 0 and hr.resize_y == 0
    return {
        "Hires upscale": hr.scale if scaled else None,
        "Hires resize": None if scaled else f"{tw}x{th}",
        "Hires steps": hr.steps or None,
        "Hires upscaler": hr.upscaler,
        "Hires sampler": hr.sampler_name,
        "Hires prompt": hr.prompt or None,
        "Hires negative prompt": hr.negative_prompt or None,
    }


def prepare(model: PreparedModel, settings: GenerationSettings, first: Any) -> Any:
    """The hires pass, as the WebUI's `sample_hr_pass`: img2img of the enlarged first pass that runs
    exactly `hr_second_pass_steps` (or `steps`) steps, its prompt schedule counting on from the first pass."""
    from openesd.generation.tasks.passes import prepare_pass

    hr = settings.hires
    return prepare_pass(
        model,
        "img2img",
        settings,
        sampler_name=hr.sampler_name or settings.sampler_name,
        scheduler_name=hr.scheduler or settings.scheduler,
        steps=hr.steps or settings.steps,
        prompt=hr.prompt or settings.prompt,
        negative_prompt=hr.negative_prompt or settings.negative_prompt,
        denoising_strength=hr.denoising_strength,
        exact_steps=True,
        first_pass_steps=first.plan.steps,
    )


def second_pass(
    model: PreparedModel, settings: GenerationSettings, latents: Any, batch: Any, run: Any, ctx: Any
) -> list[Any]:
    """First-pass latents -> final PIL images at the hires size."""
    from openesd.generation.tasks.passes import start_batch

    hr = settings.hires
    tw, th = target_size(settings, hr)
    if hr.upscaler in LATENT_MODES:
        image = _upscale_latents(latents, model.vae_scale_factor, tw, th, *LATENT_MODES[hr.upscaler])
    else:
        image = encode_mean(model.pipe, _upscale_images(decode_latents(model.pipe, latents), hr.upscaler, tw, th, ctx))
    # A new ImageRNG at the hires size from the same seeds: its first draw is the img2img noise.
    start_batch(run, model, settings, batch.seeds, batch.subseeds, tw, th)
    out = run.pipe(
        **run.embeds,
        image=image,
        strength=hr.denoising_strength,
        num_images_per_prompt=len(batch.seeds),
        num_inference_steps=hr.steps or settings.steps,
        guidance_scale=settings.cfg_scale,
        generator=seeds.generators(batch.seeds),
        callback_on_step_end=ctx.progress.hook(),
        output_type="np",
    )
    return to_pil(out.images)


def _upscale_latents(latents: Any, factor: int, width: int, height: int, mode: str, antialias: bool) -> Any:
    import torch

    size = (height // factor, width // factor)
    kwargs = {"antialias": antialias} if mode in ("bilinear", "bicubic") else {}
    return torch.nn.functional.interpolate(latents.float(), size=size, mode=mode, **kwargs).to(latents.dtype)


def _upscale_images(images: list[Any], name: str, width: int, height: int, ctx: Any) -> list[Any]:
    from openesd.generation.tasks import upscalers

    return [upscalers.upscale_to(image, name, width, height, ctx.models, ctx.upscalers) for image in images]
