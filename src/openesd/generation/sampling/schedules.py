"""The model's discrete sigmas and the WebUI 1.10's scheduler sigma lists (sd_schedulers.py behaviour).

Every list is computed the way the WebUI computes it: float32 torch on the CPU (k-diffusion's
get_sigmas_* functions), numpy float64 where the WebUI uses numpy, then handed out as Python floats.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from openesd.errors import UnsupportedFeature
from openesd.generation.sampling._schedulers import BETA_DIST_DEFAULT, SCHEDULERS, Scheduler, append_zero

if TYPE_CHECKING:
    import torch

    from openesd.generation.payload.settings import SamplerOptions
    from openesd.generation.sampling.samplers import SamplerSpec

# processing.py rescale_zero_terminal_snr_abar: the last alpha_bar is set to this instead of 0.
ZERO_SNR_LAST_ALPHA_BAR = 4.8973451890853435e-08


class ModelSigmas:
    """The model's 1000 sigmas, ascending, as k-diffusion's DiscreteSchedule holds them (MIT, Crowson).

    float32 like the WebUI's CompVisDenoiser: alphas_cumprod is computed in float64 and registered
    as a float32 buffer by the LDM / SGM model; sigmas = ((1 - a) / a) ** 0.5 in float32.
    """

    def __init__(self, sigmas: torch.Tensor, alphas_cumprod: torch.Tensor | None = None) -> None:
        import torch

        self.sigmas = sigmas.to(torch.float32)
        self.log_sigmas = self.sigmas.log()
        self.alphas_cumprod = 1 / (1 + self.sigmas**2) if alphas_cumprod is None else alphas_cumprod

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, zero_terminal_snr: bool = False) -> ModelSigmas:
        """From a diffusers scheduler config; `zero_terminal_snr` is the WebUI's sd_noise_schedule option."""
        import torch

        alphas_cumprod = _alphas_cumprod(config).to(torch.float32)
        if zero_terminal_snr:
            alphas_cumprod = _rescale_zero_terminal_snr(alphas_cumprod)
        return cls(((1 - alphas_cumprod) / alphas_cumprod) ** 0.5, alphas_cumprod)

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])

    def sigma_to_t(self, sigma: torch.Tensor | float) -> torch.Tensor:
        """Fractional timestep of a sigma, by linear interpolation of log sigma (k-diffusion)."""
        import torch

        sigma = torch.as_tensor(sigma, dtype=torch.float32)
        log_sigma = sigma.log()
        dists = log_sigma - self.log_sigmas[:, None]
        low_idx = dists.ge(0).cumsum(dim=0).argmax(dim=0).clamp(max=self.log_sigmas.shape[0] - 2)
        high_idx = low_idx + 1
        low, high = self.log_sigmas[low_idx], self.log_sigmas[high_idx]
        w = ((low - log_sigma) / (low - high)).clamp(0, 1)
        return ((1 - w) * low_idx + w * high_idx).view(sigma.shape)

    def t_to_sigma(self, t: torch.Tensor | float) -> torch.Tensor:
        """Sigma of a (fractional) timestep, by linear interpolation of log sigma (k-diffusion)."""
        import torch

        t = torch.as_tensor(t).float()
        low_idx, high_idx, w = t.floor().long(), t.ceil().long(), t.frac()
        return ((1 - w) * self.log_sigmas[low_idx] + w * self.log_sigmas[high_idx]).exp()

    def get_sigmas(self, n: int) -> torch.Tensor:
        """k-diffusion's DiscreteSchedule.get_sigmas: n timesteps evenly spaced from 999 to 0, then 0."""
        import torch

        t = torch.linspace(len(self.sigmas) - 1, 0, n)
        return append_zero(self.t_to_sigma(t))

    def lcm(self) -> LCMSigmas:
        """The WebUI's LCMCompVisDenoiser view of this model (50 of the 1000 sigmas)."""
        return LCMSigmas(self)


class LCMSigmas(ModelSigmas):
    """The WebUI's LCMCompVisDenoiser: every 20th timestep (19, 39, ..., 999), quantized sigma_to_t."""

    skip_steps = 20

    def __init__(self, model: ModelSigmas) -> None:
        index = list(range(self.skip_steps - 1, len(model.sigmas), self.skip_steps))
        # the WebUI takes alphas_cumprod at those steps; sigma is a function of alpha_bar alone
        super().__init__(model.sigmas[index])

    def sigma_to_t(self, sigma: torch.Tensor | float) -> torch.Tensor:
        import torch

        sigma = torch.as_tensor(sigma, dtype=torch.float32)
        dists = sigma.log() - self.log_sigmas[:, None]
        return dists.abs().argmin(dim=0).view(sigma.shape) * self.skip_steps + (self.skip_steps - 1)

    def t_to_sigma(self, t: torch.Tensor | float) -> torch.Tensor:
        import torch

        t = torch.as_tensor(t)
        index = torch.clamp(((t - (self.skip_steps - 1)) / self.skip_steps).float(), min=0, max=len(self.sigmas) - 1)
        return super().t_to_sigma(index)

    def get_sigmas(self, n: int) -> torch.Tensor:
        import torch

        start = self.sigma_to_t(torch.tensor(self.sigma_max))
        end = self.sigma_to_t(torch.tensor(self.sigma_min))
        return append_zero(self.t_to_sigma(torch.linspace(start, end, n)))


@dataclass(frozen=True)
class SigmaPlan:
    """The sigmas the WebUI hands the sampler, and the infotext entries it writes for that choice."""

    sigmas: list[float]
    params: dict[str, Any] = field(default_factory=dict)
    # keyword arguments the sampler needs besides the sigmas (UniPC: its own alpha_t per level); start() takes them
    extra: dict[str, Any] = field(default_factory=dict)
    # the level the WebUI scales the starting noise to when it is not sigmas[0]: img2img with DDIM/PLMS/UniPC,
    # timesteps[t_enc], one above the first evaluated; txt2img with DPM fast, the schedule's first sigma
    noise_sigma: float | None = None


def sigma_plan(
    scheduler_label: str,
    spec: SamplerSpec,
    steps: int,
    model: ModelSigmas,
    options: SamplerOptions,
    *,
    is_sdxl: bool = False,
    t_enc: int | None = None,
) -> SigmaPlan:
    """The sigmas for `steps` steps of `spec` under the scheduler named `scheduler_label`.

    Follows KDiffusionSampler.get_sigmas (and CompVisSampler.get_timesteps for the timestep samplers).
    img2img: pass the `steps` and `t_enc` of the WebUI's sd_samplers_common.setup_img2img_steps; the plan
    is then the part the WebUI samples, and `noise_sigma` the level the init latent is noised to
    (samplers.starting_latent).
    """
    inner = model.lcm() if spec.lcm and not spec.timesteps else model
    params = schedule_params(scheduler_label, spec, options, (inner.sigma_min, inner.sigma_max))
    discard = spec.discard_next_to_last_sigma or options.always_discard_next_to_last_sigma
    total = steps + (1 if discard else 0)
    if spec.timesteps:
        return _timestep_plan(spec, total, model, options, params, t_enc)
    sigmas = _scheduled(scheduler_label, spec, total, inner, options, params, is_sdxl)
    if discard:
        sigmas = sigmas[:-2] + sigmas[-1:]
    if t_enc is not None:  # sample_img2img: sigma_sched = sigmas[steps - t_enc - 1:], steps before the discard
        return SigmaPlan(sigmas[steps - t_enc - 1 :], params)
    if spec.model_sigma_range:
        # KDiffusionSampler.sample gives sample_dpm_fast the model's sigma range and n = steps (as asked,
        # before any discard), not the schedule; the coroutine takes n from the list's length. The schedule
        # still counts: its infotext, and x = noise * sigmas[0] (the DDIM scheduler's first sigma is
        # sigma(751) at 4 steps, not sigma_max)
        extra = {"sigma_min": inner.sigma_min, "sigma_max": inner.sigma_max}
        return SigmaPlan(inner.get_sigmas(steps).tolist(), params, extra, noise_sigma=sigmas[0])
    return SigmaPlan(sigmas, params)


def _timestep_plan(
    spec: SamplerSpec, steps: int, model: ModelSigmas, options: SamplerOptions, params: dict, t_enc: int | None
) -> SigmaPlan:
    """DDIM / PLMS / UniPC: CompVisSampler.sample, or sample_img2img (timesteps[:t_enc], noised to t_enc)."""
    ts = timesteps(steps)
    noise_sigma = float(model.sigmas[ts[t_enc]]) if t_enc is not None else None
    if t_enc is not None:
        ts = ts[:t_enc]
    if spec.unipc:
        from openesd.generation.sampling._unipc import unipc_levels

        t_start = 1.0 if t_enc is None else ts[-1] / 1000 + 1 / 1000  # the WebUI's t_start for img2img
        sigmas, alphas = unipc_levels(len(ts), model, options.uni_pc_skip_type, t_start)
        return SigmaPlan(sigmas, params, {"alphas": alphas}, noise_sigma)
    return SigmaPlan([float(model.sigmas[t]) for t in reversed(ts)] + [0.0], params, noise_sigma=noise_sigma)


def timesteps(steps: int) -> list[int]:
    """CompVisSampler.get_timesteps: range(0, 1000, 1000 // steps) + 1, clipped to 999 (may be > steps long).

    As sigmas (SigmaPlan of DDIM/PLMS): sigma(t) for these, descending, then 0. The WebUI's DDIM/PLMS
    evaluate the model at every timestep but the smallest, and their last step lands on that one: the
    next-to-last entry is the landing level, not a model evaluation.
    """
    return [min(max(t + 1, 0), 999) for t in range(0, 1000, 1000 // steps)]


def find_scheduler(label: str) -> Scheduler:
    """The scheduler by label, name or alias, as sd_schedulers.schedulers_map finds it."""
    for scheduler in SCHEDULERS:
        if label in (scheduler.label, scheduler.name, *scheduler.aliases):
            return scheduler
    valid = ", ".join(s.label for s in SCHEDULERS)
    raise UnsupportedFeature(f"Unknown scheduler {label!r}; valid schedulers: {valid}")


def sampler_scheduler(label: str, spec: SamplerSpec) -> Scheduler:
    """The scheduler a k-diffusion sampler runs under `label` (label, name or alias): "Automatic" is the
    sampler's own default_scheduler where it has one (get_sigmas); a scheduler without a function means
    the model's own sigmas."""
    scheduler = find_scheduler(label)
    if scheduler.name == "automatic" and spec.default_scheduler:
        scheduler = find_scheduler(spec.default_scheduler)
    return scheduler


def schedule_params(
    label: str, spec: SamplerSpec, options: SamplerOptions, sigma_range: tuple[float, float] | None = None
) -> dict[str, Any]:
    """The infotext entries the WebUI's get_sigmas (get_timesteps for DDIM/PLMS/UniPC) writes for `spec` under
    the scheduler `label`, in its order: "Discard penultimate sigma", then for a scheduler with a function its
    "Schedule type", "Schedule min sigma" / "Schedule max sigma" / "Schedule rho" where the options change
    them, and the "Beta schedule alpha" / "... beta". These are the SigmaPlan's `params`; this needs no model:
    `sigma_range` is the model's (sigma_min, sigma_max), and without it a sigma setting is left out only when
    it is 0 (the WebUI also leaves out one equal to the model's own).
    """
    params: dict[str, Any] = {}
    if options.always_discard_next_to_last_sigma and not spec.discard_next_to_last_sigma:
        params["Discard penultimate sigma"] = True
    if spec.timesteps:
        return params
    scheduler = sampler_scheduler(label, spec)
    if scheduler.function is None:
        return params
    params["Schedule type"] = scheduler.label
    model_min, model_max = sigma_range or (None, None)
    if options.sigma_min != 0 and options.sigma_min != model_min:
        params["Schedule min sigma"] = options.sigma_min
    if options.sigma_max != 0 and options.sigma_max != model_max:
        params["Schedule max sigma"] = options.sigma_max
    if scheduler.default_rho != -1 and options.rho != 0 and options.rho != scheduler.default_rho:
        params["Schedule rho"] = options.rho
    if scheduler.name == "beta":
        params["Beta schedule alpha"] = getattr(options, "beta_dist_alpha", BETA_DIST_DEFAULT)
        params["Beta schedule beta"] = getattr(options, "beta_dist_beta", BETA_DIST_DEFAULT)
    return params


# schedule_params entry -> the scheduler function's keyword argument it sets
_PARAM_KWARGS = {
    "Schedule min sigma": "sigma_min",
    "Schedule max sigma": "sigma_max",
    "Schedule rho": "rho",
    "Beta schedule alpha": "alpha",
    "Beta schedule beta": "beta",
}


def _scheduled(
    label: str, spec: SamplerSpec, steps: int, inner: ModelSigmas, options: SamplerOptions, params: dict, is_sdxl: bool
) -> list[float]:
    scheduler = sampler_scheduler(label, spec)
    if scheduler.function is None:
        return inner.get_sigmas(steps).tolist()
    kwargs: dict[str, Any] = {"sigma_min": inner.sigma_min, "sigma_max": inner.sigma_max}
    if options.use_old_karras_scheduler_sigmas:  # the WebUI's compatibility option: every scheduler's range
        kwargs.update(sigma_min=0.1, sigma_max=10.0)
    kwargs.update({kwarg: params[key] for key, kwarg in _PARAM_KWARGS.items() if key in params})
    if scheduler.need_inner_model:
        kwargs["inner_model"] = inner
    if scheduler.name == "align_your_steps":
        kwargs["is_sdxl"] = is_sdxl
    return scheduler.function(n=steps, **kwargs).tolist()


def _alphas_cumprod(config: Mapping[str, Any]) -> torch.Tensor:
    """alpha_bar in float64 as the LDM/SGM code computes it (torch.linspace float64, numpy cumprod)."""
    import numpy as np
    import torch

    n = int(config.get("num_train_timesteps", 1000))
    start, end = float(config.get("beta_start", 0.00085)), float(config.get("beta_end", 0.012))
    schedule = config.get("beta_schedule", "scaled_linear")
    if config.get("trained_betas") is not None:
        betas = np.asarray(config["trained_betas"], dtype=np.float64)
    elif schedule == "scaled_linear":  # LDM's "linear"
        betas = (torch.linspace(start**0.5, end**0.5, n, dtype=torch.float64) ** 2).numpy()
    elif schedule == "linear":  # LDM's "sqrt_linear"
        betas = torch.linspace(start, end, n, dtype=torch.float64).numpy()
    else:
        raise UnsupportedFeature(f"Unsupported beta_schedule {schedule!r}; valid: scaled_linear, linear, trained_betas")
    return torch.tensor(np.cumprod(1.0 - betas, axis=0))


def _rescale_zero_terminal_snr(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """The WebUI's "Zero Terminal SNR" noise schedule (Lin et al. 2023), on the float32 alpha_bar."""
    alphas_bar_sqrt = alphas_cumprod.sqrt()
    first, last = alphas_bar_sqrt[0].clone(), alphas_bar_sqrt[-1].clone()
    alphas_bar_sqrt -= last
    alphas_bar_sqrt *= first / (first - last)
    alphas_bar = alphas_bar_sqrt**2
    alphas_bar[-1] = ZERO_SNR_LAST_ALPHA_BAR
    return alphas_bar
