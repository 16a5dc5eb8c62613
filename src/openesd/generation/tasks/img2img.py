"""img2img and inpainting as the WebUI does them: resize modes, mask blur/invert/fill, full-res
inpainting, and pasting the result back so unmasked pixels keep the original."""

from __future__ import annotations

from typing import Any

from PIL import Image, ImageFilter, ImageOps

from openesd.generation.images import decode_image
from openesd.generation.job import PreparedModel
from openesd.generation.payload.scripts import ScriptOptions
from openesd.generation.payload.settings import GenerationSettings, InpaintSettings
from openesd.generation.tasks import seeds, tiled_diffusion
from openesd.generation.tasks.infotext import InfoBuilder
from openesd.generation.tasks.passes import Pass, prepare_pass, start_batch
from openesd.generation.tasks.vae import encode_mean, to_pil
from openesd.generation.images import resize_image
from openesd.generation.tasks.seeds import batches
from openesd.generation.tasks.txt2img import JobContext, detected_maps, finish, prepare_controlnet
from openesd.generation.types import GenerationResult

RESIZE_MODES = ("Just resize", "Crop and resize", "Resize and fill", "Just resize (latent upscale)")


def prepare_mask(inpaint: InpaintSettings, size: tuple[int, int]) -> Image.Image:
    """The mask as "L" at the image size: white = repaint; inverted and blurred as asked."""
    mask = decode_image(inpaint.mask)
    if mask.mode in ("RGBA", "LA"):
        # A1111: the alpha channel and the colour together decide what is masked.
        mask = (
            Image.merge("RGB", [mask.getchannel("A")] * 3).convert("L")
            if mask.mode == "LA"
            else Image.composite(mask.convert("RGB"), Image.new("RGB", mask.size), mask.getchannel("A")).convert("L")
        )
    mask = mask.convert("L").resize(size, Image.LANCZOS)
    if inpaint.invert:
        mask = ImageOps.invert(mask)
    if inpaint.blur_x or inpaint.blur_y:
        mask = mask.filter(ImageFilter.GaussianBlur(radius=max(inpaint.blur_x, inpaint.blur_y)))
    return mask


def fill_masked(image: Image.Image, mask: Image.Image, fill: int, seed: int) -> Image.Image:
    """inpainting_fill: 0 fill with surrounding colours, 1 original, 2 noise, 3 nothing (flat grey)."""
    if fill == 1:
        return image
    if fill == 0:
        source = image.filter(ImageFilter.GaussianBlur(radius=max(image.size) / 8))
    elif fill == 2:
        import numpy as np

        rng = np.random.default_rng(seed)
        source = Image.fromarray(rng.integers(0, 256, (image.height, image.width, 3), dtype=np.uint8))
    else:
        source = Image.new("RGB", image.size, (127, 127, 127))
    hard = mask.point(lambda v: 255 if v > 127 else 0)
    return Image.composite(source, image, hard)


def crop_region(mask: Image.Image, padding: int, width: int, height: int) -> tuple[int, int, int, int]:
    """The masked area's box plus padding, grown to the output's aspect ratio (inpaint_full_res)."""
    box = mask.point(lambda v: 255 if v > 0 else 0).getbbox() or (0, 0, mask.width, mask.height)
    x1, y1, x2, y2 = box[0] - padding, box[1] - padding, box[2] + padding, box[3] + padding
    ratio = width / height
    w, h = x2 - x1, y2 - y1
    if w / h < ratio:
        grow = int(h * ratio) - w
        x1, x2 = x1 - grow // 2, x2 + grow - grow // 2
    else:
        grow = int(w / ratio) - h
        y1, y2 = y1 - grow // 2, y2 + grow - grow // 2
    return max(x1, 0), max(y1, 0), min(x2, mask.width), min(y2, mask.height)


def _init_image(source: Image.Image, settings: GenerationSettings) -> Image.Image:
    original = source.convert("RGB")
    image = resize_image(settings.resize_mode, original, settings.width, settings.height)
    if settings.resize_mode == 3:
        image.info["openesd_original"] = original  # the latent path encodes the unresized image
    return image


def run_img2img(
    model: PreparedModel, settings: GenerationSettings, scripts: ScriptOptions, ctx: JobContext
) -> GenerationResult:
    from openesd.generation.tasks import adetailer

    # 1. Decode and size the inputs before any step runs.
    detailer = adetailer.prepare(scripts, model, settings, ctx)
    sources = [decode_image(s) for s in settings.init_images]
    if scripts.tiled_diffusion is not None:  # the extension upscales before anything is sized
        sources = tiled_diffusion.upscale_inputs(sources, settings, scripts.tiled_diffusion, ctx)
    inits = [_init_image(source, settings) for source in sources]
    mask = prepare_mask(settings.inpaint, (settings.width, settings.height)) if settings.inpaint else None
    kind = "inpaint" if mask is not None else "img2img"
    seed, subseed = seeds.resolve_seed(settings.seed), seeds.resolve_seed(settings.subseed)
    controlnet = prepare_controlnet(scripts, ctx, settings, seed, init_image=inits[0], model=model, init_mask=mask)
    uses_net = controlnet is not None and controlnet.controlnet is not None
    strength = settings.denoising_strength
    run = (
        None
        if strength <= 0 or (detailer is not None and detailer.options.skip_img2img)
        else prepare_pass(
            model,
            f"controlnet-{kind}" if uses_net else kind,
            settings,
            sampler_name=settings.sampler_name,
            scheduler_name=settings.scheduler,
            steps=settings.steps,
            prompt=settings.prompt,
            negative_prompt=settings.negative_prompt,
            denoising_strength=strength,
            controlnet=controlnet.controlnet if controlnet else None,
        )
    )
    if run is not None:
        tiled_diffusion.attach(run, model, settings, scripts, ctx, controlnet)
    ctx.progress.plan(settings.n_iter * settings.batch_size * (run.evaluations if run else 0))
    if controlnet is not None and run is not None:
        controlnet.attach(run)

    # 2. Seeds (resolved above, as ControlNet's shuffle draws from them).
    extra = dict(ctx.extra_params)
    if mask is not None:
        extra.update(
            {
                "Mask blur": max(settings.inpaint.blur_x, settings.inpaint.blur_y),
                "Inpaint area": "Only masked" if settings.inpaint.full_res else None,
                "Masked area padding": settings.inpaint.full_res_padding if settings.inpaint.full_res else None,
            }
        )
    info = InfoBuilder(settings, model.path, model.vae_path, seed, subseed, extra=extra)

    # 3. Denoise each batch from its init images.
    images: list[Any] = []
    index = 0
    for batch in batches(settings, seed, subseed):
        sources = [inits[(index + i) % len(inits)] for i in range(len(batch.seeds))]
        index += len(batch.seeds)
        if run is None:  # strength 0 or ADetailer's skip_img2img: the inputs come back as they are
            images.extend(source.copy() for source in sources)
            continue
        call = dict(**run.embeds, **_control_kwargs(controlnet))
        if mask is None:
            done = _img2img_batch(model, run, settings, sources, batch, call, ctx)
        else:
            done = _inpaint_batch(model, run, settings, sources, mask, batch, call, ctx)
        images.extend(controlnet.finish(done) if controlnet is not None else done)
    images = adetailer.run(detailer, images, info, seed, subseed)
    # ControlNet's detected maps follow the generated images, as the extension appends them.
    extra_images = detected_maps(controlnet, settings) + (inits if settings.include_init_images else [])
    return adetailer.annotate(detailer, finish(images, settings, info, seed, subseed, extra_images))


def _control_kwargs(controlnet: Any) -> dict[str, Any]:
    """diffusers' img2img/inpaint ControlNet pipelines take the control image as `control_image`."""
    if controlnet is None:
        return {}
    kwargs = dict(controlnet.kwargs)
    if "image" in kwargs:
        kwargs["control_image"] = kwargs.pop("image")
    return kwargs


def _img2img_batch(
    model: PreparedModel,
    run: Pass,
    settings: GenerationSettings,
    sources: list[Image.Image],
    batch: Any,
    call: dict,
    ctx: JobContext,
) -> list[Image.Image]:
    # The init latent is the VAE posterior's mean (tasks/vae.py says why), handed to the pipeline as latents.
    image: Any = (
        _latent_resize(model, settings, sources) if settings.resize_mode == 3 else encode_mean(model.pipe, sources)
    )
    start_batch(run, model, settings, batch.seeds, batch.subseeds, settings.width, settings.height)
    out = run.pipe(
        **_repeat_embeds(call, len(sources)),
        image=image,
        strength=run.plan.denoising_strength,
        num_images_per_prompt=1,
        num_inference_steps=settings.steps,
        guidance_scale=settings.cfg_scale,
        generator=seeds.generators(batch.seeds),
        callback_on_step_end=ctx.progress.hook(),
        output_type="np",
    )
    return to_pil(out.images)


def _repeat_embeds(call: dict, count: int) -> dict:
    """One init image per batch item: the (batch 1) prompt embeddings are repeated to the batch size."""
    return {k: v.repeat(count, *([1] * (v.dim() - 1))) if k.endswith("prompt_embeds") else v for k, v in call.items()}


def _latent_resize(model: PreparedModel, settings: GenerationSettings, sources: list[Image.Image]) -> Any:
    """resize_mode 3: encode each image at its own size, then resize the latents (A1111's latent upscale)."""
    import torch

    pipe = model.pipe
    factor = model.vae_scale_factor
    latents = []
    for image in sources:
        original = image.info.get("openesd_original", image)
        w, h = max(original.width // factor * factor, factor), max(original.height // factor * factor, factor)
        tensor = pipe.image_processor.preprocess(original.resize((w, h)), height=h, width=w)
        with torch.no_grad():
            encoded = pipe.vae.encode(tensor.to(pipe.device, pipe.vae.dtype)).latent_dist.mean
        size = (settings.height // factor, settings.width // factor)
        latents.append(torch.nn.functional.interpolate(encoded.float(), size=size, mode="bilinear"))
    stacked = torch.cat(latents) * pipe.vae.config.scaling_factor
    return stacked.to(pipe.unet.dtype)


def _inpaint_batch(
    model: PreparedModel,
    run: Pass,
    settings: GenerationSettings,
    sources: list[Image.Image],
    mask: Image.Image,
    batch: Any,
    call: dict,
    ctx: JobContext,
) -> list[Image.Image]:
    inpaint = settings.inpaint
    results = []
    for index, (source, image_seed) in enumerate(zip(sources, batch.seeds)):
        region = (
            crop_region(mask, inpaint.full_res_padding, settings.width, settings.height)
            if inpaint.full_res
            else (0, 0, source.width, source.height)
        )
        crop_img = source.crop(region).resize((settings.width, settings.height), Image.LANCZOS)
        crop_mask = mask.crop(region).resize((settings.width, settings.height), Image.LANCZOS)
        filled = fill_masked(crop_img, crop_mask, inpaint.fill, image_seed)
        noise = start_batch(
            run, model, settings, [image_seed], [batch.subseeds[index]], settings.width, settings.height
        )
        if not model.inpainting:
            run.scheduler.latent_mask = _latent_mask(crop_mask, model.vae_scale_factor)
        out = run.pipe(
            **call,
            image=filled,
            mask_image=crop_mask,
            strength=run.plan.denoising_strength,
            **({"latents": run.plan.starting_latent(noise)} if run.plan.denoising_strength >= 1.0 else {}),
            num_inference_steps=_pipeline_steps(settings.steps, run.plan.denoising_strength),
            guidance_scale=settings.cfg_scale,
            width=settings.width,
            height=settings.height,
            generator=seeds.generators([image_seed]),
            callback_on_step_end=ctx.progress.hook(),
            output_type="np",
        ).images
        results.append(_paste_back(source, to_pil(out)[0], mask, region))
    return results


def _pipeline_steps(steps: int, strength: float) -> int:
    """The step count for diffusers' inpaint pipelines, which refuse a count whose `int(n * strength)` is 0.

    The sampler's steps are planned already (the WebUI runs 1 step at 2 steps and strength 0.3); the
    pipeline's count only sizes the padding SamplerScheduler puts before them, so it may be raised.
    """
    n = steps
    while int(n * strength) < 1:
        n += 1
    return n


def _latent_mask(mask: Image.Image, factor: int) -> Any:
    """The mask at latent size, rounded to 0/1 as the WebUI's `mask_round` does: (1, 1, h, w)."""
    import numpy as np
    import torch

    small = mask.convert("L").resize((mask.width // factor, mask.height // factor))
    return torch.from_numpy(np.around(np.asarray(small, dtype=np.float32) / 255.0))[None, None]


def _paste_back(
    original: Image.Image, generated: Image.Image, mask: Image.Image, region: tuple[int, int, int, int]
) -> Image.Image:
    """Only masked pixels come from the generation; the rest stays the original (A1111's overlay)."""
    x1, y1, x2, y2 = region
    patch = generated.resize((x2 - x1, y2 - y1), Image.LANCZOS)
    canvas = original.copy()
    canvas.paste(patch, (x1, y1))
    return Image.composite(canvas, original, mask)
