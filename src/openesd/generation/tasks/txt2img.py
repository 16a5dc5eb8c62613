"""txt2img as the WebUI runs it: n_iter batches of batch_size images from A1111 seeds, then optional
hires fix or SDXL refiner, each image with its infotext."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from openesd.errors import UnsupportedFeature
from openesd.generation.images import encode_png
from openesd.generation.job import PreparedModel, Progress, derive, encode
from openesd.generation.payload.scripts import ScriptOptions
from openesd.generation.payload.settings import GenerationSettings
from openesd.generation.tasks import seeds
from openesd.generation.tasks.infotext import InfoBuilder, model_name, short_hash
from openesd.generation.tasks.samplers import scheduler_for
from openesd.generation.types import GenerationResult, ModelFiles


@dataclass
class JobContext:
    """What a job needs beyond its settings: model files, progress, and the worker's shared loaders."""

    models: ModelFiles
    progress: Progress
    load_model: Callable[[str], PreparedModel]  # a checkpoint name from `models` -> prepared model
    upscalers: Any = None
    device: Any = None
    dtype: Any = None
    extra_params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Batch:
    """One n_iter step: the seeds of its images and the prompt embeddings for the pipeline call."""

    seeds: list[int]
    subseeds: list[int]
    embeds: dict[str, Any]


def batches(settings: GenerationSettings, seed: int, subseed: int, embeds: dict[str, Any]) -> list[Batch]:
    size = settings.batch_size
    return [
        Batch(seeds.image_seeds(seed + n * size, size), seeds.image_seeds(subseed + n * size, size), embeds)
        for n in range(settings.n_iter)
    ]


def initial_latents(
    model: PreparedModel, settings: GenerationSettings, batch: Batch, width: int, height: int, channels: int = 4
) -> Any:
    factor = model.vae_scale_factor
    shape = (channels, height // factor, width // factor)
    resize = None
    if settings.seed_resize_from_w > 0 and settings.seed_resize_from_h > 0:
        resize = (settings.seed_resize_from_h // factor, settings.seed_resize_from_w // factor)
    noise = seeds.batch_noise(shape, batch.seeds, batch.subseeds, settings.subseed_strength, resize)
    return noise.to(model.pipe.device, model.pipe.unet.dtype)


def run_txt2img(
    model: PreparedModel, settings: GenerationSettings, scripts: ScriptOptions, ctx: JobContext
) -> GenerationResult:
    from openesd.generation.tasks import hires

    # 1. Check what this model can do with these settings before any step runs.
    if settings.refiner_checkpoint and settings.hires:
        raise UnsupportedFeature("hires fix and the SDXL refiner cannot be combined in one job")
    if model.family == "sdxl_refiner":
        raise UnsupportedFeature(f"{model.path.name} is an SDXL refiner; it cannot run txt2img on its own")
    if model.inpainting and settings.hires:
        raise UnsupportedFeature(f"hires fix is not supported with the inpainting checkpoint {model.path.name}")
    scheduler = scheduler_for(model, settings.sampler_name, settings.scheduler)
    controlnet = prepare_controlnet(scripts, ctx, settings.width, settings.height)
    kind = "controlnet-txt2img" if controlnet else "txt2img"
    if model.inpainting:
        kind = "controlnet-inpaint" if controlnet else "inpaint"
    pipe = derive(model, kind, scheduler, controlnet.controlnet if controlnet else None)
    conditioning = _inpainting_model_inputs(settings) if model.inpainting else {}
    refiner = _load_refiner(model, settings, ctx)

    # 2. Seeds and prompt embeddings, once for the whole job.
    seed, subseed = seeds.resolve_seed(settings.seed), seeds.resolve_seed(settings.subseed)
    embeds = encode(model, pipe, settings.prompt, settings.negative_prompt, settings.clip_skip)
    info = InfoBuilder(settings, model.path, model.vae_path, seed, subseed, extra=dict(ctx.extra_params))

    # 3. Sample each batch; hand latents to hires fix / the refiner when asked.
    images: list[Any] = []
    for batch in batches(settings, seed, subseed, embeds):
        latents = initial_latents(model, settings, batch, settings.width, settings.height)
        handoff = settings.hires is not None or refiner is not None
        end = settings.refiner_switch_at if refiner is not None else None
        out = pipe(
            **batch.embeds,
            **_control_kwargs(controlnet, model),
            **conditioning,
            **_size_kwargs(settings.width, settings.height),
            latents=latents,
            num_images_per_prompt=len(batch.seeds),
            num_inference_steps=settings.steps,
            guidance_scale=settings.cfg_scale,
            generator=seeds.generators(batch.seeds),
            output_type="latent" if handoff else "pil",
            callback_on_step_end=ctx.progress.hook(),
            **_eta(settings),
            **({"denoising_end": end} if end is not None else {}),
        )
        result = out.images
        if settings.hires is not None:
            result = hires.second_pass(model, settings, result, batch, ctx)
        elif refiner is not None:
            result = refine(refiner, settings, result, batch, ctx)
        images.extend(result)

    # 4. Infotexts and PNGs, as the WebUI returns them.
    return finish(images, settings, info, seed, subseed)


def finish(
    images: list[Any],
    settings: GenerationSettings,
    info: InfoBuilder,
    seed: int,
    subseed: int,
    extra_images: list[Any] | None = None,
) -> GenerationResult:
    pngs = []
    all_seeds = [s for b in batches(settings, seed, subseed, {}) for s in b.seeds]
    all_subseeds = [s for b in batches(settings, seed, subseed, {}) for s in b.subseeds]
    for image, image_seed, image_subseed in zip(images, all_seeds, all_subseeds):
        text = info.add_image(settings.prompt, settings.negative_prompt, image_seed, image_subseed, image.size)
        pngs.append(encode_png(image, text))
    pngs.extend(encode_png(image) for image in extra_images or [])
    return GenerationResult(images=pngs, parameters=None, info=info.info_json())


def _inpainting_model_inputs(settings: GenerationSettings) -> dict[str, Any]:
    """txt2img on an inpainting checkpoint, as A1111 does it: everything masked, nothing kept."""
    from PIL import Image

    size = (settings.width, settings.height)
    return {"image": Image.new("RGB", size, (127, 127, 127)), "mask_image": Image.new("L", size, 255), "strength": 1.0}


def _control_kwargs(controlnet: Any, model: PreparedModel) -> dict[str, Any]:
    if controlnet is None:
        return {}
    kwargs = dict(controlnet.kwargs)
    if model.inpainting and "image" in kwargs:
        kwargs["control_image"] = kwargs.pop("image")
    return kwargs


def _size_kwargs(width: int, height: int) -> dict[str, int]:
    return {"width": width, "height": height}


def _eta(settings: GenerationSettings) -> dict[str, float]:
    # diffusers passes eta only to schedulers that take it (DDIM); A1111's default there is 0.
    return {"eta": settings.eta} if settings.eta is not None else {}


def prepare_controlnet(scripts: ScriptOptions, ctx: JobContext, width: int, height: int, init_image: Any = None) -> Any:
    """ControlNet models and call kwargs for the enabled units, or None (img2img units may use the init image)."""
    if not scripts.controlnet_units:
        return None
    from openesd.generation.adapters import controlnet

    return controlnet.prepare_units(
        scripts.controlnet_units, ctx.models, width, height, ctx.device, ctx.dtype, init_image=init_image
    )


def _load_refiner(model: PreparedModel, settings: GenerationSettings, ctx: JobContext) -> PreparedModel | None:
    if not settings.refiner_checkpoint or settings.refiner_checkpoint == "None":
        return None
    if model.family != "sdxl":
        raise UnsupportedFeature(f"the refiner needs an SDXL base checkpoint; {model.path.name} is {model.family}")
    refiner = ctx.load_model(settings.refiner_checkpoint)
    if refiner.family not in ("sdxl", "sdxl_refiner"):
        raise UnsupportedFeature(f"refiner checkpoint {refiner.path.name} is {refiner.family}, not SDXL")
    switch = settings.refiner_switch_at if settings.refiner_switch_at is not None else 0.8
    settings.refiner_switch_at = switch
    ctx.extra_params.update(
        {"Refiner": f"{model_name(refiner.path)} [{short_hash(refiner.path)}]", "Refiner switch at": switch}
    )
    return refiner


def refine(
    refiner: PreparedModel, settings: GenerationSettings, latents: Any, batch: Batch, ctx: JobContext
) -> list[Any]:
    """Finish the base model's latents with the refiner from `refiner_switch_at` on (diffusers' handoff)."""
    scheduler = scheduler_for(refiner, settings.sampler_name, settings.scheduler)
    pipe = derive(refiner, "img2img", scheduler)
    embeds = encode(refiner, pipe, settings.prompt, settings.negative_prompt, settings.clip_skip)
    out = pipe(
        **embeds,
        image=latents.to(refiner.pipe.device, refiner.pipe.unet.dtype),
        num_images_per_prompt=len(batch.seeds),
        num_inference_steps=settings.steps,
        denoising_start=settings.refiner_switch_at,
        guidance_scale=settings.cfg_scale,
        generator=seeds.generators(batch.seeds),
        callback_on_step_end=ctx.progress.hook(),
        output_type="pil",
    )
    return out.images
