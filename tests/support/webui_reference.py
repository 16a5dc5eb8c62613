"""An independent reference for "same payload, same picture": the AUTOMATIC1111 WebUI 1.10's sampling,
driven with k-diffusion's own sampling functions on a diffusers UNet (issue 21).

It shares only the prompt embeddings with the worker (openesd.generation.prompts.encoding) and never
imports openesd.generation.sampling, which is what it measures. WebUI behaviour followed (the
WebUI's files read to learn it, no code copied):

- Samplers (sd_samplers_kdiffusion.samplers_k_diffusion, sd_samplers_timesteps.samplers_timesteps,
  sd_samplers_lcm): `SAMPLERS` below, with each sampler's default ("Automatic") scheduler,
  discard_next_to_last_sigma, Brownian noise and solver type. KDiffusionSampler.initialize: `eta`
  is the payload's or `eta_ancestral` (1.0) for every function that takes one (DPM fast/adaptive
  too), `eta_ddim` (0.0) for DDIM; s_churn/s_tmin/s_tmax/s_noise go to the functions listed in
  `sampler_extra_params`. DPM fast / adaptive get the model's sigma range instead of the list, and
  DPM fast n = steps (KDiffusionSampler.sample); x is still noise * the scheduler's sigmas[0].
- Model (k_diffusion.external.CompVisDenoiser/CompVisVDenoiser via KDiffusionSampler): the LDM
  alphas_cumprod (betas linear in sqrt space, float64, stored float32), sigma -> fractional t by
  log-sigma interpolation (DiscreteSchedule.sigma_to_t, unquantised), eps: x + eps * -sigma on
  input * 1/sqrt(sigma^2+1); v: c_skip/c_out/c_in with sigma_data 1.
- CFG (sd_samplers_cfg_denoiser.CFGDenoiser): cond then uncond batched in one UNet call, denoised =
  uncond + (cond - uncond) * cfg_scale on the denoised predictions (on eps for the timestep
  samplers: CFGDenoiserTimesteps); SDXL's vector = pooled text + time ids [h, w, crop_top 0,
  crop_left 0, h, w] and zeros for an empty negative prompt (sd_models_xl.get_learned_conditioning).
- Schedulers (sd_schedulers.py; KDiffusionSampler.get_sigmas): `scheduler_sigmas` over the lists in
  `webui_schedules`; discard_next_to_last_sigma asks for steps + 1 sigmas and drops the penultimate.
- Seeds (processing.process_images_inner, rng.ImageRNG, TorchHijack): `image_seeds` and
  `webui_noise`; the step noise replaces k-diffusion's `torch.randn_like` while a sampler runs;
  DPM++ SDE / 2M SDE / 3M SDE take a BrownianTreeNoiseSampler over the full schedule's (min > 0,
  max) seeded with the image seeds (KDiffusionSampler.create_noise_sampler), not ENSD-shifted.
- Timestep samplers (sd_samplers_timesteps.py; `webui_timesteps`): timesteps range(0, 1000,
  1000 // steps) + 1 clipped to 999; DDIM / DDIM CFG++ / PLMS walk them from the top and stop one
  short; x starts at the noise itself; CFG++ divides the scale by 12.5. UniPC
  (sd_samplers_timesteps_impl.unipc; `webui_extra.UniPC`) takes len(timesteps) steps of its own
  continuous time from t = 1 (img2img: timesteps[-1] / 1000 + 1 / 1000) with the uni_pc_* options.
- Restart (sd_samplers_extra.restart_sampler; `webui_extra.restart_sampler`): run by KDiffusionSampler
  like a k-diffusion function, on Karras by default.
- LCM (sd_samplers_lcm.py): 50 "original" timesteps 19, 39, ..., 999, t quantised to the nearest
  of them, LCM's c_skip/c_out at 10 * t (sigma_data 0.5), x = denoised + sigma_next * noise.
- txt2img (processing.StableDiffusionProcessingTxt2Img.sample): x = noise * sigmas[0].
- img2img (sd_samplers_common.setup_img2img_steps with img2img_fix_steps off): t_enc =
  int(min(denoising, 0.999) * steps), sigmas[steps - t_enc - 1:], x = init + noise * sigma_sched[0];
  timestep samplers: timesteps[:t_enc], x = init * sqrt(a) + noise * sqrt(1 - a) at timesteps[t_enc].
- hires fix (processing.StableDiffusionProcessingTxt2Img.sample_hr_pass): latent upscale with
  torch interpolate, a fresh ImageRNG in the new shape, then img2img with steps given, which
  setup_img2img_steps turns into steps = int(hr_steps / min(denoising, 0.999)), t_enc = hr_steps - 1:
  exactly hr_steps steps at the end of a longer schedule.
- Output (processing.process_images): decode latents / scaling_factor, clamp((x + 1) / 2, 0, 1),
  255 * x truncated by astype(uint8).

The init latent of img2img is an input: the WebUI samples the VAE posterior with the unseeded global
RNG (negligible for a real VAE, whose std is tiny); `encode_image` gives the posterior mean.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import torch

from tests.support import kdiffusion, webui_extra, webui_noise, webui_schedules, webui_timesteps
from tests.support.webui_noise import ImageNoise, StepNoise


@dataclass(frozen=True)
class SamplerSpec:
    """One WebUI sampler: how it runs (`kind`: "k", "timesteps", "lcm") and its table options."""

    kind: str
    function: str
    scheduler: str = "Uniform"  # what "Automatic" means for it
    discard_penultimate: bool = False
    brownian: bool = False
    solver_type: str | None = None
    extra_params: tuple[str, ...] = ()


_CHURN = ("s_churn", "s_tmin", "s_tmax", "s_noise")
SAMPLERS: dict[str, SamplerSpec] = {
    "DPM++ 2M": SamplerSpec("k", "sample_dpmpp_2m", "Karras"),
    "DPM++ SDE": SamplerSpec("k", "sample_dpmpp_sde", "Karras", brownian=True, extra_params=("s_noise",)),
    "DPM++ 2M SDE": SamplerSpec("k", "sample_dpmpp_2m_sde", "Exponential", brownian=True, extra_params=("s_noise",)),
    "DPM++ 2M SDE Heun": SamplerSpec(
        "k", "sample_dpmpp_2m_sde", "Exponential", brownian=True, solver_type="heun", extra_params=("s_noise",)
    ),
    "DPM++ 2S a": SamplerSpec("k", "sample_dpmpp_2s_ancestral", "Karras", extra_params=("s_noise",)),
    "DPM++ 3M SDE": SamplerSpec(
        "k", "sample_dpmpp_3m_sde", "Exponential", discard_penultimate=True, brownian=True, extra_params=("s_noise",)
    ),
    "Euler a": SamplerSpec("k", "sample_euler_ancestral"),
    "Euler": SamplerSpec("k", "sample_euler", extra_params=_CHURN),
    "LMS": SamplerSpec("k", "sample_lms"),
    "Heun": SamplerSpec("k", "sample_heun", extra_params=_CHURN),
    "DPM2": SamplerSpec("k", "sample_dpm_2", "Karras", discard_penultimate=True, extra_params=_CHURN),
    "DPM2 a": SamplerSpec("k", "sample_dpm_2_ancestral", "Karras", discard_penultimate=True, extra_params=("s_noise",)),
    "DPM fast": SamplerSpec("k", "sample_dpm_fast", extra_params=("s_noise",)),
    "DPM adaptive": SamplerSpec("k", "sample_dpm_adaptive"),
    "Restart": SamplerSpec("restart", "restart_sampler", "Karras"),
    "DDIM": SamplerSpec("timesteps", "ddim"),
    "DDIM CFG++": SamplerSpec("timesteps", "ddim_cfgpp"),
    "PLMS": SamplerSpec("timesteps", "plms"),
    "UniPC": SamplerSpec("timesteps", "unipc"),
    "LCM": SamplerSpec("lcm", "sample_lcm"),
}
SCHEDULERS = webui_schedules.SCHEDULERS


@dataclass
class Settings:
    """The payload fields and WebUI options that change sampling (WebUI names and defaults)."""

    sampler: str = "Euler"
    scheduler: str = "Automatic"
    steps: int = 4
    cfg_scale: float = 7.0
    seeds: list[int] = field(default_factory=lambda: [42])
    subseeds: list[int] | None = None
    subseed_strength: float = 0.0
    seed_resize_from: tuple[int, int] = (0, 0)  # seed_resize_from_w, seed_resize_from_h in pixels
    eta: float | None = None
    eta_ancestral: float = 1.0
    eta_ddim: float = 0.0
    s_churn: float = 0.0
    s_tmin: float = 0.0
    s_tmax: float = float("inf")
    s_noise: float = 1.0
    eta_noise_seed_delta: int = 0
    randn_source: str = "CPU"
    always_discard_next_to_last_sigma: bool = False
    beta_dist_alpha: float = 0.6
    beta_dist_beta: float = 0.6
    uni_pc_variant: str = "bh1"
    uni_pc_skip_type: str = "time_uniform"
    uni_pc_order: int = 3
    uni_pc_lower_order_final: bool = True

    @property
    def spec(self) -> SamplerSpec:
        return SAMPLERS[self.sampler]


@dataclass
class Conditioning:
    """One prompt pair's embeddings (batch 1), plus SDXL's pooled embeddings and time ids."""

    cond: torch.Tensor
    uncond: torch.Tensor
    pooled_cond: torch.Tensor | None = None
    pooled_uncond: torch.Tensor | None = None
    time_ids: torch.Tensor | None = None


def image_seeds(seed: int, subseed: int, subseed_strength: float, count: int) -> tuple[list[int], list[int]]:
    """Seeds and subseeds of a job's images (processing.process_images_inner): seed + i, except that
    with a subseed strength every image keeps the seed and only the subseeds count up."""
    seeds = [seed + (i if subseed_strength == 0 else 0) for i in range(count)]
    return seeds, [subseed + i for i in range(count)]


def conditioning(pipe: Any, prompt: str, negative: str, width: int, height: int, clip_skip: int = 1) -> Conditioning:
    """The project's prompt encoding, and the WebUI's SDXL time ids for a width x height image; an
    empty SDXL negative prompt is all zeros, text and pooled (sd_models_xl: force_zero_embeddings)."""
    from openesd.generation.prompts.encoding import encode_prompts

    embeds = encode_prompts(pipe, prompt, negative, clip_skip, [])
    result = Conditioning(embeds.prompt_embeds, embeds.negative_prompt_embeds)
    if embeds.pooled_prompt_embeds is not None:
        result.pooled_cond, result.pooled_uncond = embeds.pooled_prompt_embeds, embeds.negative_pooled_prompt_embeds
        result.time_ids = torch.tensor([[height, width, 0, 0, height, width]], dtype=torch.float32)
        if negative == "":
            result.uncond, result.pooled_uncond = result.uncond * 0, result.pooled_uncond * 0
    return result


class DiscreteModel:
    """The UNet as k-diffusion's CompVisDenoiser sees it: discrete sigmas, sigma <-> fractional t."""

    def __init__(self, pipe: Any):
        config = pipe.scheduler.config
        n = config.num_train_timesteps
        if config.beta_schedule == "scaled_linear":
            betas = torch.linspace(config.beta_start**0.5, config.beta_end**0.5, n, dtype=torch.float64) ** 2
        else:
            betas = torch.linspace(config.beta_start, config.beta_end, n, dtype=torch.float64)
        self.unet = pipe.unet
        self.is_sdxl = hasattr(pipe, "text_encoder_2")
        self.v_prediction = config.get("prediction_type") == "v_prediction"
        self.alphas_cumprod = torch.cumprod(1 - betas, 0).float()
        self.set_alphas(self.alphas_cumprod)

    def set_alphas(self, alphas_cumprod: torch.Tensor) -> None:
        self.sigmas = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5
        self.log_sigmas = self.sigmas.log()

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        log_sigma = sigma.log()
        dists = log_sigma - self.log_sigmas[:, None]
        low = dists.ge(0).cumsum(dim=0).argmax(dim=0).clamp(max=self.log_sigmas.shape[0] - 2)
        lo, hi = self.log_sigmas[low], self.log_sigmas[low + 1]
        w = ((lo - log_sigma) / (lo - hi)).clamp(0, 1)
        return ((1 - w) * low + w * (low + 1)).view(sigma.shape)

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        t = t.float()
        low, high, w = t.floor().long(), t.ceil().long(), t.frac()
        return ((1 - w) * self.log_sigmas[low] + w * self.log_sigmas[high]).exp()

    def get_sigmas(self, n: int) -> torch.Tensor:
        t = torch.linspace(len(self.sigmas) - 1, 0, n)
        return torch.cat([self.t_to_sigma(t), torch.zeros(1)])

    def unet_output(self, x: torch.Tensor, t: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        """The UNet on [x for cond..., x for uncond...] (x already doubled), cond first."""
        half = x.shape[0] // 2
        hidden = torch.cat([cond.cond.expand(half, -1, -1), cond.uncond.expand(half, -1, -1)])
        kwargs: dict[str, Any] = {}
        if cond.pooled_cond is not None:
            pooled = torch.cat([cond.pooled_cond.expand(half, -1), cond.pooled_uncond.expand(half, -1)])
            kwargs["added_cond_kwargs"] = {"text_embeds": pooled, "time_ids": cond.time_ids.expand(2 * half, -1)}
        dtype = self.unet.dtype
        out = self.unet(x.to(dtype), t.to(dtype), encoder_hidden_states=hidden.to(dtype), **kwargs).sample
        return out.float()

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        """k-diffusion's DiscreteEps/VDDPMDenoiser.forward: the model's x0 prediction at sigma."""
        s = sigma[:, None, None, None]
        c_in = 1 / (s**2 + 1) ** 0.5
        out = self.unet_output(x * c_in, self.sigma_to_t(sigma), cond)
        if self.v_prediction:
            return out * (-s / (s**2 + 1) ** 0.5) + x / (s**2 + 1)
        return x + out * -s

    def eps(self, x: torch.Tensor, t: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        """The timestep samplers' model (CompVisTimestepsDenoiser / ...VDenoiser): eps at integer t."""
        out = self.unet_output(x, t, cond)
        if not self.v_prediction:
            return out
        a = self.alphas_cumprod[t.long()][:, None, None, None]
        return a.sqrt() * out + (1 - a).sqrt() * x


class LCMModel(DiscreteModel):
    """sd_samplers_lcm.LCMCompVisDenoiser: 50 original timesteps (19, 39, ..., 999), t quantised."""

    skip = 20

    def __init__(self, pipe: Any):
        super().__init__(pipe)
        self.set_alphas(self.alphas_cumprod[self.skip - 1 :: self.skip])

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        index = (sigma.log() - self.log_sigmas[:, None]).abs().argmin(dim=0).view(sigma.shape)
        return index * self.skip + (self.skip - 1)

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        return super().t_to_sigma(((t - (self.skip - 1)) / self.skip).float().clamp(0, len(self.sigmas) - 1))

    def get_sigmas(self, n: int) -> torch.Tensor:
        start, end = self.sigma_to_t(self.sigmas[-1]), self.sigma_to_t(self.sigmas[0])
        return torch.cat([self.t_to_sigma(torch.linspace(float(start), float(end), n)), torch.zeros(1)])

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        s = sigma[:, None, None, None]
        t = self.sigma_to_t(sigma)
        x0 = x + self.unet_output(x / (s**2 + 1) ** 0.5, t, cond) * -s
        scaled = (t.float() * 10.0)[:, None, None, None]
        c_skip = 0.25 / (scaled**2 + 0.25)
        c_out = scaled / (scaled**2 + 0.25) ** 0.5
        return c_out * x0 + c_skip * x


class CFGDenoiser:
    """k-diffusion's `model(x, sigma)`: cond and uncond in one UNet call, combined on denoised."""

    def __init__(self, model: DiscreteModel, cond: Conditioning, cfg_scale: float):
        self.model, self.cond, self.cfg_scale = model, cond, cfg_scale
        self.calls = 0

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **_: Any) -> torch.Tensor:
        self.calls += 1
        batch = x.shape[0]
        out = self.model.denoise(torch.cat([x, x]), torch.cat([sigma, sigma]), self.cond)
        uncond = out[batch:]
        return uncond + (out[:batch] - uncond) * self.cfg_scale


# -- Sigma schedules --------------------------------------------------------------------------------


def scheduler_sigmas(model: DiscreteModel, scheduler: str, steps: int, settings: Settings) -> torch.Tensor:
    """The WebUI's get_sigmas: the scheduler's list ("Automatic": the sampler's), penultimate dropped
    for samplers that ask for it (or always_discard_next_to_last_sigma)."""
    spec = settings.spec
    name = spec.scheduler if scheduler == "Automatic" else scheduler
    discard = spec.discard_penultimate or settings.always_discard_next_to_last_sigma
    n = steps + 1 if discard else steps
    beta = (settings.beta_dist_alpha, settings.beta_dist_beta)
    sigmas = webui_schedules.sigma_list(model, name, n, beta).float()
    if discard:
        sigmas = torch.cat([sigmas[:-2], sigmas[-1:]])
    return sigmas


def timesteps_for(steps: int, settings: Settings) -> torch.Tensor:
    """sd_samplers_timesteps.CompVisSampler.get_timesteps, with discard_next_to_last_sigma."""
    discard = settings.spec.discard_penultimate or settings.always_discard_next_to_last_sigma
    return webui_schedules.integer_timesteps(steps + 1 if discard else steps)


# -- Running a sampler ------------------------------------------------------------------------------


@contextlib.contextmanager
def _step_noise(noise: ImageNoise, like: torch.Tensor) -> Iterator[None]:
    """The WebUI's TorchHijack: k-diffusion's `torch.randn_like` draws from the image generators."""
    ks = kdiffusion.sampling()
    saved = ks.torch
    ks.torch = StepNoise(noise, like.device, like.dtype)
    try:
        yield
    finally:
        ks.torch = saved


def _k_sample(
    model: DiscreteModel,
    cond: Conditioning,
    settings: Settings,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    schedule: torch.Tensor,
    noise: ImageNoise,
) -> torch.Tensor:
    """Run a k-diffusion function on `sigmas` (the part to sample) as KDiffusionSampler does."""
    import inspect

    ks = kdiffusion.sampling()
    spec = settings.spec
    func = {"lcm": _sample_lcm, "restart": webui_extra.restart_sampler}.get(spec.kind) or getattr(ks, spec.function)
    params = inspect.signature(func).parameters
    kwargs: dict[str, Any] = {name: getattr(settings, name) for name in spec.extra_params if name in params}
    if "eta" in params:
        kwargs["eta"] = settings.eta if settings.eta is not None else settings.eta_ancestral
    if "sigma_min" in params:  # DPM fast / adaptive take a range, not the list: txt2img the model's
        whole = sigmas is schedule
        kwargs["sigma_min"] = float(model.sigmas[0] if whole else sigmas[-2])
        kwargs["sigma_max"] = float(model.sigmas[-1] if whole else sigmas[0])
        if "n" in params:  # txt2img: the steps asked for, whatever length the scheduler's list has
            kwargs["n"] = settings.steps if whole else len(sigmas) - 1
    else:
        kwargs["sigmas"] = sigmas
    if spec.brownian:
        positive = schedule[schedule > 0]
        with _torchsde_randn(settings.randn_source):  # the tree draws its first numbers when it is made
            kwargs["noise_sampler"] = ks.BrownianTreeNoiseSampler(
                x, positive.min(), schedule.max(), seed=settings.seeds
            )
    if spec.solver_type:
        kwargs["solver_type"] = spec.solver_type
    denoiser = CFGDenoiser(model, cond, settings.cfg_scale)
    with torch.no_grad(), _step_noise(noise, x), _torchsde_randn(settings.randn_source):
        return func(denoiser, x, disable=True, **kwargs)


@contextlib.contextmanager
def _torchsde_randn(source: str) -> Iterator[None]:
    """sd_samplers_kdiffusion replaces torchsde's `_randn` with `devices.randn_local`: the Brownian trees
    draw their normals from the `randn_source` generator seeded with the tree's seed."""
    from torchsde._brownian import brownian_interval

    def randn(size: Any, dtype: Any, device: Any, seed: int) -> torch.Tensor:
        return webui_noise.draw(webui_noise.make_generator(seed, source), tuple(size)).to(device, dtype)

    original = brownian_interval._randn
    brownian_interval._randn = randn
    try:
        yield
    finally:
        brownian_interval._randn = original


def _sample_lcm(model: Any, x: torch.Tensor, sigmas: torch.Tensor, disable: Any = None, **_: Any) -> torch.Tensor:
    """sd_samplers_lcm.sample_lcm: jump to the prediction, re-noise to the next sigma (k-diffusion's
    `torch`, looked up at each step, is the step noise while it runs)."""
    ks = kdiffusion.sampling()
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        x = model(x, sigmas[i] * s_in)
        if sigmas[i + 1] > 0:
            x = x + sigmas[i + 1] * ks.torch.randn_like(x)
    return x


def _model_for(pipe: Any, settings: Settings) -> DiscreteModel:
    return LCMModel(pipe) if settings.spec.kind == "lcm" else DiscreteModel(pipe)


def _timestep_sample(
    model: DiscreteModel,
    cond: Conditioning,
    settings: Settings,
    x: torch.Tensor,
    timesteps: torch.Tensor,
    noise: Any,
    img2img: bool = False,
) -> torch.Tensor:
    """DDIM, DDIM CFG++, PLMS (webui_timesteps) and UniPC (webui_extra) on the CFG-combined eps
    (CFGDenoiserTimesteps); UniPC asks at fractional timesteps."""
    cfgpp = settings.spec.function == "ddim_cfgpp"
    scale = settings.cfg_scale / 12.5 if cfgpp else settings.cfg_scale
    last_uncond: list[torch.Tensor] = []

    def eps(x: torch.Tensor, t: float) -> torch.Tensor:
        batch = x.shape[0]
        out = model.eps(torch.cat([x, x]), torch.full((2 * batch,), float(t)), cond)
        last_uncond[:] = [out[batch:]]
        return out[batch:] + (out[:batch] - out[batch:]) * scale

    with torch.no_grad():
        if settings.spec.function == "unipc":  # sd_samplers_timesteps_impl.unipc
            unipc = webui_extra.UniPC(model.alphas_cumprod, eps, settings.uni_pc_variant)
            t_start = float(timesteps[-1]) / 1000 + 1 / 1000 if img2img else 1.0
            order, skip, final = settings.uni_pc_order, settings.uni_pc_skip_type, settings.uni_pc_lower_order_final
            return unipc.sample(x, len(timesteps), order, skip, final, t_start)
        if settings.spec.function == "plms":
            return webui_timesteps.plms(eps, x, timesteps, model.alphas_cumprod)
        eta = settings.eta if settings.eta is not None else settings.eta_ddim
        direction = (lambda: last_uncond[0]) if cfgpp else None
        return webui_timesteps.ddim(eps, x, timesteps, model.alphas_cumprod, eta, noise, direction)


# -- txt2img, img2img, hires fix ---------------------------------------------------------------------


def _noise(model: DiscreteModel, settings: Settings, shape: tuple[int, int, int], factor: int) -> ImageNoise:
    w, h = settings.seed_resize_from
    resize = (h // factor, w // factor) if w > 0 and h > 0 else None
    return ImageNoise(
        shape,
        settings.seeds,
        settings.subseeds,
        settings.subseed_strength,
        resize,
        settings.eta_noise_seed_delta,
        settings.randn_source,
        model.unet.device,
    )


def latent_factor(pipe: Any) -> int:
    return int(getattr(pipe, "vae_scale_factor", 8))


def txt2img(pipe: Any, cond: Conditioning, settings: Settings, width: int, height: int) -> torch.Tensor:
    """Latents (B, C, H/f, W/f) of one txt2img batch, one image per seed."""
    model = _model_for(pipe, settings)
    factor = latent_factor(pipe)
    noise = _noise(model, settings, (model.unet.config.in_channels, height // factor, width // factor), factor)
    x = noise.next().to(model.unet.device)
    if settings.spec.kind == "timesteps":
        return _timestep_sample(model, cond, settings, x, timesteps_for(settings.steps, settings), noise)
    sigmas = scheduler_sigmas(model, settings.scheduler, settings.steps, settings)
    return _k_sample(model, cond, settings, x * sigmas[0], sigmas, sigmas, noise)


def _from_latent(
    pipe: Any, cond: Conditioning, settings: Settings, init: torch.Tensor, steps: int, t_enc: int, noise: ImageNoise
) -> torch.Tensor:
    """The samplers' sample_img2img: `steps` of schedule, the last t_enc (+1) of them run from `init`."""
    model = _model_for(pipe, settings)
    x0 = noise.next().to(init)
    if settings.spec.kind == "timesteps":
        timesteps = timesteps_for(steps, settings)
        a = float(model.alphas_cumprod[timesteps[t_enc]])
        x = init * math.sqrt(a) + x0 * math.sqrt(1 - a)
        return _timestep_sample(model, cond, settings, x, timesteps[:t_enc], noise, img2img=True)
    sigmas = scheduler_sigmas(model, settings.scheduler, steps, settings)
    sched = sigmas[steps - t_enc - 1 :]
    return _k_sample(model, cond, settings, init + x0 * sched[0], sched, sigmas, noise)


def img2img(pipe: Any, cond: Conditioning, settings: Settings, init_latent: torch.Tensor, denoising: float) -> Any:
    """img2img latents from init latents (B, C, h, w), img2img_fix_steps off (the WebUI's default)."""
    t_enc = int(min(denoising, 0.999) * settings.steps)
    noise = _noise(DiscreteModel(pipe), settings, tuple(init_latent.shape[1:]), latent_factor(pipe))
    return _from_latent(pipe, cond, settings, init_latent, settings.steps, t_enc, noise)


def hires(
    pipe: Any,
    cond: Conditioning,
    settings: Settings,
    first_pass: torch.Tensor,
    size: tuple[int, int],
    denoising: float,
    hr_steps: int = 0,
    mode: str = "bilinear",
    antialias: bool = False,
) -> torch.Tensor:
    """Hires fix's second pass on first-pass latents: latent upscale to `size` (width, height) pixels,
    a fresh noise in the new shape, `hr_steps or steps` steps at the end of a longer schedule."""
    factor = latent_factor(pipe)
    target = (size[1] // factor, size[0] // factor)
    upscaled = torch.nn.functional.interpolate(first_pass, size=target, mode=mode, antialias=antialias)
    requested = hr_steps or settings.steps
    steps = int(requested / min(denoising, 0.999)) if denoising > 0 else 0
    noise = _noise(DiscreteModel(pipe), settings, tuple(upscaled.shape[1:]), factor)
    return _from_latent(pipe, cond, settings, upscaled, steps, requested - 1, noise)


def encode_image(pipe: Any, image: Any) -> torch.Tensor:
    """An RGB PIL image -> scaled latent (1, C, h, w): the VAE posterior's mean (see the module doc)."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    tensor = torch.from_numpy(array).permute(2, 0, 1)[None] * 2 - 1
    vae = pipe.vae
    with torch.no_grad():
        mean = vae.encode(tensor.to(vae.device, vae.dtype)).latent_dist.mean
    return mean.float() * vae.config.scaling_factor


def decode(pipe: Any, latents: torch.Tensor) -> np.ndarray:
    """Latents -> (B, H, W, 3) uint8 the WebUI's way: clamp((x + 1) / 2), 255 * x truncated."""
    vae = pipe.vae
    with torch.no_grad():
        images = vae.decode(latents.to(vae.device, vae.dtype) / vae.config.scaling_factor).sample.float()
    images = torch.clamp((images + 1.0) / 2.0, min=0.0, max=1.0)
    return (255.0 * np.moveaxis(images.cpu().numpy(), 1, 3)).astype(np.uint8)


def psnr(a: Any, b: Any) -> float:
    """Peak signal-to-noise ratio of two uint8 images (or stacks) in dB; inf when identical."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"cannot compare images of shapes {a.shape} and {b.shape}")
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)
