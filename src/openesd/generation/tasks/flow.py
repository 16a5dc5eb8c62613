"""txt2img and img2img/inpaint on FLUX.1 and SD 3.5 from the same WebUI payloads, the way Forge runs them.

Seeds, batches, variation seeds, resize modes, masks, prompt schedules (`[a:b:when]`, `[a|b]`) and the
infotext are the SD path's; sampling is FlowMatch Euler (generation/sampling/flow.py) on the pipeline's
transformer, each step's x0 going to the job's live previews. What these families cannot do
(the SDXL refiner, ControlNet, ADetailer, Tiled Diffusion, seamless tiling, other samplers) fails
naming it before any step runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PIL import Image

from openesd.errors import PayloadError, UnsupportedFeature
from openesd.generation.images import decode_image
from openesd.generation.job import PreparedModel, check_size
from openesd.generation.payload.scripts import ScriptOptions
from openesd.generation.payload.settings import DISTILLED_CFG_DEFAULT, GenerationSettings, HiresSettings
from openesd.generation.prompts.encoding import extract_loras
from openesd.generation.prompts.schedules import prompt_schedule, text_at_step
from openesd.generation.sampling import flow
from openesd.generation.sampling import flow_models as models
from openesd.generation.sampling.noise import ImageRNG
from openesd.generation.tasks import seeds
from openesd.generation.tasks.infotext import InfoBuilder
from openesd.generation.tasks.passes import randn_source
from openesd.generation.tasks.txt2img import JobContext, finish
from openesd.generation.tasks.vae import to_pil
from openesd.generation.types import GenerationResult

FAMILY_NAMES = {"flux-dev": "FLUX.1-dev", "flux-schnell": "FLUX.1-schnell", "sd3": "SD 3.5"}


def run_flow(
    task: str, model: PreparedModel, settings: GenerationSettings, scripts: ScriptOptions, ctx: JobContext
) -> GenerationResult:
    """One txt2img or img2img job on a FLUX.1 / SD 3.5 pipeline."""
    # 1. Validate everything this family cannot honour before any step runs.
    name = FAMILY_NAMES[models.variant(model.family, model.pipe)]
    check_supported(name, settings, scripts)
    settings.scheduler = flow.check_sampler(settings.sampler_name, settings.scheduler)
    distilled = distilled_scale(name, model, settings)
    factor = model.vae_scale_factor
    check_size(settings.width, settings.height, 2 * factor)  # 2x2 patches of latents
    clip_skip_ignored(model, settings)

    # 2. Prompt schedules, the sigma schedule, the transformer call (and the hires pass's).
    encoded: dict[tuple[str, str], models.FlowPrompts] = {}  # each distinct pair encoded once per job
    prompts = (settings.prompt, settings.negative_prompt)
    velocity = _velocity(model, settings, prompts, distilled, encoded)
    h, w = settings.height // factor, settings.width // factor
    sigmas = _schedule(model, settings, settings.scheduler, settings.steps, (h, w))
    if task == "img2img":
        sigmas = flow.img2img_sigmas(sigmas, settings.steps, settings.denoising_strength)
    hr = settings.hires
    hires = _Hires.prepare(model, settings, hr, distilled, encoded) if hr is not None else None
    calls = (len(sigmas) - 1) * velocity.calls_per_step + (hires.calls if hires is not None else 0)
    ctx.progress.plan(settings.n_iter * calls)
    on_step = _reporter(ctx, velocity.calls_per_step)

    # 3. Sample each n_iter batch from the WebUI's per-image noise.
    seed, subseed = seeds.resolve_seed(settings.seed), seeds.resolve_seed(settings.subseed)
    info = InfoBuilder(settings, model.path, model.vae_path, seed, subseed, extra=_extra(ctx, settings, distilled))
    inputs = _Inputs.read(settings) if task == "img2img" else None
    images: list[Any] = []
    for batch in seeds.batches(settings, seed, subseed):
        noise = _noise(model, settings, batch, (h, w))
        if inputs is not None:
            images.extend(inputs.denoise(model, velocity, noise, sigmas, batch, on_step, settings))
            continue
        latents = flow.euler(velocity, flow.noised(0 * noise, noise, sigmas[0]), sigmas, on_step)
        if hires is not None:
            latents = hires.second_pass(model, settings, latents, batch, ctx)
        images.extend(to_pil(models.decode(model.pipe, latents)))
    extra_images = inputs.inits if inputs is not None and settings.include_init_images else []
    return finish(images, settings, info, seed, subseed, extra_images)


def _velocity(
    model: PreparedModel,
    settings: GenerationSettings,
    prompts: tuple[str, str],
    distilled: float | None,
    encoded: dict[tuple[str, str], models.FlowPrompts],
    hires_steps: int | None = None,
) -> models.FlowTransformer:
    """The transformer conditioned as the WebUI schedules the prompt and the negative prompt (`[a:b:when]`,
    `[a|b]`): each distinct text encoded by the family's encoders, switched at its step (hires: counted from
    the first pass's start, as the SD path does)."""
    text, negative = extract_loras(prompts[0])[0], extract_loras(prompts[1])[0]
    old = settings.sampling.use_old_scheduling
    positive = prompt_schedule(text, settings.steps, hires_steps, old)
    negatives = prompt_schedule(negative, settings.steps, hires_steps, old)
    entries = []
    for end in sorted({e.end_at_step for e in positive} | {e.end_at_step for e in negatives}):
        pair = (text_at_step(positive, end), text_at_step(negatives, end))
        if pair not in encoded:
            encoded[pair] = _encode_pair(model, settings, *pair)
        entries.append((end, encoded[pair]))
    schedule = models.PromptSchedule(entries)
    return models.FlowTransformer(model.family, model.pipe, schedule, settings.cfg_scale, distilled)


def _encode_pair(model: PreparedModel, settings: GenerationSettings, text: str, negative: str) -> models.FlowPrompts:
    cfg, skip, emphasis = settings.cfg_scale > 1, settings.clip_skip, settings.sampling.emphasis
    return models.encode(model.family, model.pipe, text, negative, cfg, clip_skip=skip, emphasis=emphasis)


def _reporter(ctx: JobContext, calls_per_step: int) -> Callable[[int, Any], None]:
    """Each sampler step as its model calls to the job's progress, with the step's x0 for live previews."""

    def on_step(i: int, denoised: Any) -> None:
        for _ in range(calls_per_step):
            ctx.progress.call_done(denoised)

    return on_step


def _schedule(
    model: PreparedModel, settings: GenerationSettings, scheduler: str, steps: int, latent: tuple[int, int]
) -> list[float]:
    """The sigmas at this latent size (FLUX.1-dev's shift grows with the image's token count)."""
    tokens = (latent[0] // 2) * (latent[1] // 2)
    shift = flow.model_shift(model.pipe.scheduler.config, tokens, settings.shift)
    options = settings.sampling
    return flow.schedule(scheduler, steps, shift, model.family, options.beta_dist_alpha, options.beta_dist_beta)


class _Hires:
    """The WebUI's hires fix on a flow model: upscale the first pass (latent or image upscaler), then an
    img2img pass at the target size from new noise of the same seeds, with the hires steps and strength."""

    def __init__(self, velocity: Any, sigmas: list[float], size: tuple[int, int], upscaler: str) -> None:
        self.velocity, self.sigmas, self.size, self.upscaler = velocity, sigmas, size, upscaler

    @property
    def calls(self) -> int:
        return (len(self.sigmas) - 1) * self.velocity.calls_per_step

    @classmethod
    def prepare(
        cls,
        model: PreparedModel,
        settings: GenerationSettings,
        hr: HiresSettings,
        distilled: float | None,
        encoded: dict[tuple[str, str], models.FlowPrompts],
    ) -> _Hires:
        from openesd.generation.tasks.hires import target_size

        width, height = target_size(settings, hr)
        check_size(width, height, 2 * model.vae_scale_factor)
        scheduler = flow.check_sampler(hr.sampler_name or settings.sampler_name, hr.scheduler or settings.scheduler)
        steps = hr.steps or settings.steps
        # The WebUI: an empty hires prompt is the first pass's.
        prompts = (hr.prompt or settings.prompt, hr.negative_prompt or settings.negative_prompt)
        velocity = _velocity(model, settings, prompts, distilled, encoded, hires_steps=steps)
        factor = model.vae_scale_factor
        sigmas = _schedule(model, settings, scheduler, steps, (height // factor, width // factor))
        return cls(velocity, flow.img2img_sigmas(sigmas, steps, hr.denoising_strength), (width, height), hr.upscaler)

    def second_pass(
        self, model: PreparedModel, settings: GenerationSettings, latents: Any, batch: Any, ctx: JobContext
    ) -> Any:
        from openesd.generation.tasks.hires import LATENT_MODES, _upscale_images, _upscale_latents

        width, height = self.size
        factor = model.vae_scale_factor
        if self.upscaler in LATENT_MODES:
            start = _upscale_latents(latents, factor, width, height, *LATENT_MODES[self.upscaler])
        else:
            first = to_pil(models.decode(model.pipe, latents))
            start = models.encode_images(model.pipe, _upscale_images(first, self.upscaler, width, height, ctx))
        noise = _noise(model, settings, batch, (height // factor, width // factor))
        x = flow.noised(start.to(noise.device).float(), noise, self.sigmas[0])
        return flow.euler(self.velocity, x, self.sigmas, _reporter(ctx, self.velocity.calls_per_step))


def check_supported(name: str, settings: GenerationSettings, scripts: ScriptOptions) -> None:
    refused = {
        f"the SDXL refiner ({settings.refiner_checkpoint})": settings.refiner_checkpoint not in (None, "", "None"),
        "ControlNet units": bool(scripts.controlnet_units),
        "ADetailer": scripts.adetailer is not None,
        "Tiled Diffusion": scripts.tiled_diffusion is not None,
        "Tiled VAE": scripts.tiled_vae,
        "seamless tiling (tiling)": settings.tiling,
        "inpaint_full_res (Only masked)": settings.inpaint is not None and settings.inpaint.full_res,
    }
    for feature, asked in refused.items():
        if asked:
            raise UnsupportedFeature(f"{feature} is not supported with {name} checkpoints")


def distilled_scale(name: str, model: PreparedModel, settings: GenerationSettings) -> float | None:
    """FLUX.1-dev's guidance input (Forge's Distilled CFG Scale, default 3.5). The others have none: Forge's
    API default (absent or 3.5) is accepted and has no effect there; any other value fails naming the field."""
    given = settings.distilled_cfg_scale
    if models.has_guidance(model.pipe):
        return DISTILLED_CFG_DEFAULT if given is None else given
    if given is not None and given != DISTILLED_CFG_DEFAULT:
        raise PayloadError(
            f"distilled_cfg_scale {given} has no effect on {name}: only FLUX.1-dev checkpoints take a distilled "
            f"guidance scale (leave it out, or use cfg_scale)"
        )
    return None


def clip_skip_ignored(model: PreparedModel, settings: GenerationSettings) -> None:
    """Clip skip changes nothing FLUX's text path uses (only CLIP-L's pooled output); `info` reports it unused."""
    if (
        model.family == "flux"
        and settings.clip_skip > 1
        and "CLIP_stop_at_last_layers" not in settings.ignored_settings
    ):
        settings.ignored_settings.append("CLIP_stop_at_last_layers")


def _extra(ctx: JobContext, settings: GenerationSettings, distilled: float | None) -> dict[str, Any]:
    """Forge's infotext entries: "Distilled CFG Scale" where the model takes it, "Shift" when the job sets it."""
    extra = dict(ctx.extra_params)
    if distilled is not None:
        extra["Distilled CFG Scale"] = distilled
    if settings.shift is not None:
        extra["Shift"] = settings.shift
    return extra


def _noise(model: PreparedModel, settings: GenerationSettings, batch: Any, size: tuple[int, int]) -> Any:
    """The WebUI's initial noise per image seed (variation seed and seed resize included), 16 channels."""
    factor = model.vae_scale_factor
    resize = None
    if settings.seed_resize_from_w > 0 and settings.seed_resize_from_h > 0:
        resize = (settings.seed_resize_from_h // factor, settings.seed_resize_from_w // factor)
    device = model.pipe.transformer.device
    rng = ImageRNG(
        (model.pipe.vae.config.latent_channels, *size),
        batch.seeds,
        subseeds=batch.subseeds,
        subseed_strength=settings.subseed_strength,
        seed_resize_from=resize,
        source=randn_source(settings.sampling.randn_source, device),
        device=device,
    )
    return rng.first().float()


class _Inputs:
    """img2img's init images and mask, sized as the SD path sizes them (tasks/img2img.py)."""

    def __init__(self, inits: list[Image.Image], mask: Image.Image | None, settings: GenerationSettings) -> None:
        self.inits, self.mask = inits, mask
        self.index = 0

    @classmethod
    def read(cls, settings: GenerationSettings) -> _Inputs:
        from openesd.generation.tasks.img2img import _init_image, prepare_mask

        if settings.resize_mode == 3:
            raise UnsupportedFeature("resize_mode 3 (latent upscale) is not supported with FLUX.1 / SD 3.5")
        inits = [_init_image(decode_image(s), settings) for s in settings.init_images]
        mask = prepare_mask(settings.inpaint, (settings.width, settings.height)) if settings.inpaint else None
        return cls(inits, mask, settings)

    def denoise(
        self,
        model: PreparedModel,
        velocity: Any,
        noise: Any,
        sigmas: list[float],
        batch: Any,
        on_step: Any,
        settings: GenerationSettings,
    ) -> list[Image.Image]:
        from openesd.generation.tasks.img2img import _latent_mask, _paste_back, fill_masked

        count = len(batch.seeds)
        sources = [self.inits[(self.index + i) % len(self.inits)] for i in range(count)]
        self.index += count
        if settings.denoising_strength <= 0:
            return [source.copy() for source in sources]
        starts = sources
        if self.mask is not None:
            fill = settings.inpaint.fill if settings.inpaint else 1
            starts = [fill_masked(s, self.mask, fill, seed) for s, seed in zip(sources, batch.seeds)]
        latent = models.encode_images(model.pipe, starts).to(noise.device)
        inpaint = None
        if self.mask is not None:
            mask = _latent_mask(self.mask, model.vae_scale_factor).to(noise.device)
            inpaint = flow.InpaintMask(mask, latent, noise)
        x = flow.noised(latent, noise, sigmas[0])
        done = to_pil(models.decode(model.pipe, flow.euler(velocity, x, sigmas, on_step, inpaint)))
        if self.mask is None:
            return done
        region = (0, 0, settings.width, settings.height)
        return [_paste_back(source, image, self.mask, region) for source, image in zip(sources, done)]
