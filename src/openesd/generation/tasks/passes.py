"""One sampling pass of a job (txt2img, img2img, the hires pass) with the WebUI's sampler, noise and prompts.

`prepare_pass` plans the sigmas, encodes every text the prompt schedule needs and derives the
pipeline with the sampler in the scheduler's place (generation/sampling/driver.py);
`start_batch` draws each n_iter batch's noise as the WebUI does and readies the sampler for the
pipeline call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from openesd.generation.job import PreparedModel, derive
from openesd.generation.payload.settings import GenerationSettings
from openesd.generation.prompts.encoding import encode_groups, extract_loras
from openesd.generation.sampling import noise as webui_noise
from openesd.generation.sampling.conditioning import Cond, Conditioning
from openesd.generation.sampling.driver import ConditionedUNet, PassPlan, SamplerScheduler, plan_pass


@dataclass
class Pass:
    """A derived pipeline whose scheduler and UNet are the WebUI sampler and CFG denoiser."""

    pipe: Any
    scheduler: SamplerScheduler
    unet: ConditionedUNet
    plan: PassPlan
    embeds: dict[str, Any]  # the pipeline's own prompt kwargs (step 0's texts; ControlNet sees these)

    @property
    def evaluations(self) -> int:
        return self.plan.evaluations


def prepare_pass(
    model: PreparedModel,
    kind: str,
    settings: GenerationSettings,
    *,
    sampler_name: str,
    scheduler_name: str | None,
    steps: int,
    prompt: str,
    negative_prompt: str,
    denoising_strength: float | None = None,
    exact_steps: bool = False,
    first_pass_steps: int | None = None,
    controlnet: Any = None,
) -> Pass:
    """`first_pass_steps`: this is the hires pass, and the prompt schedule counts from the first pass's start."""
    config = dict(model.pipe.scheduler.config)
    plan = plan_pass(
        config,
        sampler_name,
        scheduler_name,
        steps,
        settings.sampling,
        family=model.family,
        denoising_strength=denoising_strength,
        exact_steps=exact_steps,
    )
    scheduler = SamplerScheduler(plan, config)
    text, negative = extract_loras(prompt)[0], extract_loras(negative_prompt)[0]
    emphasis = settings.sampling.emphasis

    def encode_all(groups: list[list[str]]) -> list[list[Cond]]:
        found = encode_groups(model.pipe, groups, settings.clip_skip, model.embeddings, emphasis)
        return [[Cond(hidden, pooled) for hidden, pooled in group] for group in found]

    schedule_steps, hires_steps = plan.steps, None
    if first_pass_steps is not None:
        schedule_steps, hires_steps = first_pass_steps, plan.steps
    conditioning = Conditioning.build(
        text,
        negative,
        schedule_steps,
        encode_all,
        hires_steps=hires_steps,
        use_old_scheduling=settings.sampling.use_old_scheduling,
        with_empty=settings.sampling.pad_cond_uncond or settings.sampling.pad_cond_uncond_v0,
        zero_empty_negative=model.family in ("sdxl", "sdxl_refiner"),
    )
    unet = ConditionedUNet(model.pipe.unet, scheduler, conditioning, settings.cfg_scale)
    pipe = derive(model, kind, scheduler, controlnet, unet=unet)
    return Pass(pipe, scheduler, unet, plan, conditioning.pipeline_embeds())


def start_batch(
    run: Pass,
    model: PreparedModel,
    settings: GenerationSettings,
    image_seeds: list[int],
    image_subseeds: list[int],
    width: int,
    height: int,
    channels: int = 4,
) -> Any:
    """The batch's initial noise (unit variance, (B, C, H, W) on the model's device), sampler readied.

    As the WebUI: one generator per image seeded with its seed (subseed slerp and seed resize
    applied), the per-step noise continuing those generators, or for SDE samplers a Brownian tree
    per image seed.
    """
    factor = model.vae_scale_factor
    options = settings.sampling
    resize = None
    if settings.seed_resize_from_w > 0 and settings.seed_resize_from_h > 0:
        resize = (settings.seed_resize_from_h // factor, settings.seed_resize_from_w // factor)
    device = model.pipe.unet.device
    source = randn_source(options.randn_source, device)
    rng = webui_noise.ImageRNG(
        (channels, height // factor, width // factor),
        image_seeds,
        subseeds=image_subseeds,
        subseed_strength=settings.subseed_strength,
        seed_resize_from=resize,
        source=source,
        eta_noise_seed_delta=options.eta_noise_seed_delta,
        device=device,
    )
    initial = rng.first().float()
    plan = run.plan
    if plan.spec.brownian_noise:

        def factory(x: Any) -> Any:
            return webui_noise.brownian_noise(x, plan.full_sigmas, image_seeds, source=source)
    else:

        def factory(x: Any) -> Any:
            return rng.noise_sampler()

    run.scheduler.reset(len(image_seeds), initial, factory, model_dtype=model.pipe.unet.dtype)
    run.unet.restart()
    return initial


def randn_source(option: str, device: Any) -> str:
    """The source that gives an A1111 user's noise for the WebUI's `randn_source` option on this device.

    The WebUI's default, "GPU", draws with torch on the GPU; its users' pictures come from NVIDIA
    cards, whose torch.randn the "NV" source reproduces on any device. So "GPU" is the device's own
    generator on CUDA and NV elsewhere (docs/decisions.md).
    """
    if option == "GPU" and getattr(device, "type", str(device)) != "cuda":
        return "NV"
    return option
