"""txt2img as the WebUI runs it: n_iter batches of batch_size images from A1111 seeds, then optional
hires fix or SDXL refiner, each image with its infotext."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from openesd.errors import UnsupportedFeature
from openesd.generation.images import encode_png
from openesd.generation.job import PreparedModel, Progress
from openesd.generation.payload.scripts import ScriptOptions
from openesd.generation.payload.settings import GenerationSettings
from openesd.generation.tasks import seeds, tiled_diffusion
from openesd.generation.tasks.seeds import Batch, batches
from openesd.generation.tasks.infotext import InfoBuilder, model_name, short_hash
from openesd.generation.prompts.encoding import encode_groups, extract_loras
from openesd.generation.sampling.conditioning import Cond, Conditioning
from openesd.generation.sampling.driver import ModelSwitch
from openesd.generation.tasks.passes import prepare_pass, start_batch
from openesd.generation.tasks.vae import decode_latents, to_pil
from openesd.generation.types import GenerationResult, ModelFiles

__all__ = ["Batch", "JobContext", "batches", "finish", "prepare_controlnet", "run_txt2img"]


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
    # The img2img task, for the passes that inpaint a finished image (ADetailer); the generator sets it.
    run_img2img: Callable[..., GenerationResult] | None = None


def run_txt2img(
    model: PreparedModel, settings: GenerationSettings, scripts: ScriptOptions, ctx: JobContext
) -> GenerationResult:
    from openesd.generation.tasks import adetailer, hires

    # 1. Check what this model can do with these settings before any step runs.
    if settings.refiner_checkpoint and settings.hires:
        raise UnsupportedFeature("hires fix and the SDXL refiner cannot be combined in one job")
    if model.family == "sdxl_refiner":
        raise UnsupportedFeature(f"{model.path.name} is an SDXL refiner; it cannot run txt2img on its own")
    if model.inpainting and settings.hires:
        raise UnsupportedFeature(f"hires fix is not supported with the inpainting checkpoint {model.path.name}")
    detailer = adetailer.prepare(scripts, model, settings, ctx)
    seed, subseed = seeds.resolve_seed(settings.seed), seeds.resolve_seed(settings.subseed)
    controlnet = prepare_controlnet(scripts, ctx, settings, seed, model=model)
    uses_net = controlnet is not None and controlnet.controlnet is not None
    kind = "controlnet-txt2img" if uses_net else "txt2img"
    if model.inpainting:
        kind = "controlnet-inpaint" if uses_net else "inpaint"
    conditioning = _inpainting_model_inputs(settings) if model.inpainting else {}
    refiner = _load_refiner(model, settings, ctx)
    run = prepare_pass(
        model,
        kind,
        settings,
        sampler_name=settings.sampler_name,
        scheduler_name=settings.scheduler,
        steps=settings.steps,
        prompt=settings.prompt,
        negative_prompt=settings.negative_prompt,
        controlnet=controlnet.controlnet if controlnet else None,
    )
    tiled_diffusion.attach(run, model, settings, scripts, ctx, controlnet)  # the first pass only, as the extension
    hires_pass = hires.prepare(model, settings, run) if settings.hires is not None else None
    if controlnet is not None:
        controlnet.attach(run)
        if hires_pass is not None:
            controlnet.attach(hires_pass, hires=True)
    if refiner is not None:
        run.unet.switch_at(refiner_switch(refiner, settings, run))
    ctx.progress.plan(settings.n_iter * (run.evaluations + (hires_pass.evaluations if hires_pass else 0)))

    # 2. Seeds, resolved once for the whole job (above, as ControlNet's shuffle draws from them).
    info = InfoBuilder(
        settings,
        model.path,
        model.vae_path,
        seed,
        subseed,
        extra=dict(ctx.extra_params),
        inpainting_conditioning=model.inpainting,
    )

    # 3. Sample each batch; hand the latents to the hires pass when asked.
    images: list[Any] = []
    for batch in batches(settings, seed, subseed):
        noise = start_batch(run, model, settings, batch.seeds, batch.subseeds, settings.width, settings.height)
        out = run.pipe(
            **run.embeds,
            **_control_kwargs(controlnet, model),
            **conditioning,
            **_size_kwargs(settings.width, settings.height),
            latents=run.plan.starting_latent(noise),
            generator=seeds.generators(batch.seeds),  # an inpainting checkpoint's VAE still samples
            num_images_per_prompt=len(batch.seeds),
            num_inference_steps=settings.steps,
            guidance_scale=settings.cfg_scale,
            output_type="latent" if hires_pass is not None or refiner is not None else "np",
            callback_on_step_end=ctx.progress.hook(),
        )
        if hires_pass is not None:
            done = hires.second_pass(model, settings, out.images, batch, hires_pass, ctx)
        elif refiner is not None:  # the WebUI decodes with the model loaded last: the refiner
            done = decode_latents(refiner.pipe, out.images)
        else:
            done = to_pil(out.images)
        images.extend(controlnet.finish(done) if controlnet is not None else done)

    # 4. ADetailer's inpaint passes, then infotexts and PNGs, as the WebUI returns them; ControlNet's
    # detected maps come last.
    images = adetailer.run(detailer, images, info, seed, subseed)
    maps = detected_maps(controlnet, settings)
    return adetailer.annotate(detailer, finish(images, settings, info, seed, subseed, maps))


def finish(
    images: list[Any],
    settings: GenerationSettings,
    info: InfoBuilder,
    seed: int,
    subseed: int,
    extra_images: list[Any] | None = None,
) -> GenerationResult:
    pngs = []
    all_seeds = [s for b in batches(settings, seed, subseed) for s in b.seeds]
    all_subseeds = [s for b in batches(settings, seed, subseed) for s in b.subseeds]
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


def prepare_controlnet(
    scripts: ScriptOptions,
    ctx: JobContext,
    settings: GenerationSettings,
    seed: int,
    init_image: Any = None,
    model: PreparedModel | None = None,
    init_mask: Any = None,
) -> Any:
    """ControlNet models and call kwargs for the enabled units, or None (img2img units may use the init image).

    `seed` is the job's resolved first seed. IP-Adapter units go into `model`'s UNet for this job; a job
    without them takes a previous job's out."""
    from openesd.generation.adapters import controlnet

    if not scripts.controlnet_units:
        if model is not None:  # a previous job's IP-Adapter leaves the shared UNet
            controlnet.release_adapters(model.pipe.unet)
        return None
    unet = model.pipe.unet if model is not None else None
    return controlnet.prepare_units(
        scripts.controlnet_units,
        ctx.models,
        settings.width,
        settings.height,
        ctx.device,
        ctx.dtype,
        init_image=init_image,
        unet=unet,
        init_mask=init_mask,
        seed=controlnet.numpy_seed(settings.seed, settings.subseed, seed),
    )


def detected_maps(controlnet: Any, settings: GenerationSettings) -> list[Any]:
    """The ControlNet units' detected maps the job returns after its images (none without ControlNet)."""
    if controlnet is None:
        return []
    from openesd.generation.adapters.controlnet import returned_maps

    return returned_maps(controlnet, settings.override_settings)


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


def refiner_switch(refiner: PreparedModel, settings: GenerationSettings, run: Any) -> ModelSwitch:
    """The WebUI's refiner: the sampler switches to the refiner's UNet and conditioning mid-run."""
    import torch

    def encode_all(groups: list[list[str]]) -> list[list[Cond]]:
        emphasis = settings.sampling.emphasis
        found = encode_groups(refiner.pipe, groups, settings.clip_skip, refiner.embeddings, emphasis)
        return [[Cond(hidden, pooled) for hidden, pooled in group] for group in found]

    text, negative = extract_loras(settings.prompt)[0], extract_loras(settings.negative_prompt)[0]
    conditioning = Conditioning.build(
        text,
        negative,
        run.plan.steps,
        encode_all,
        use_old_scheduling=settings.sampling.use_old_scheduling,
        with_empty=settings.sampling.pad_cond_uncond or settings.sampling.pad_cond_uncond_v0,
        zero_empty_negative=True,
    )
    # SDXL refiner time ids: original size, crop (0, 0), then the WebUI's aesthetic scores (6 and 2.5).
    size = [float(settings.height), float(settings.width), 0.0, 0.0]
    time_ids = (torch.tensor([size + [2.5]]), torch.tensor([size + [6.0]]))
    model_sigmas = [float(s) for s in run.plan.model_sigmas.sigmas]
    return ModelSwitch(settings.refiner_switch_at, refiner.pipe.unet, conditioning, time_ids, model_sigmas)
