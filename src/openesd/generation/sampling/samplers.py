"""The WebUI 1.10's sampler table: names, aliases, options; resolving payload names; starting a sampler.

The options follow sd_samplers_kdiffusion.py / sd_samplers_timesteps.py / sd_samplers_lcm.py: which
k-diffusion keyword arguments each sampler receives, its default scheduler for "Automatic", and
whether it discards the next-to-last sigma.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from openesd.errors import UnsupportedFeature
from openesd.generation.sampling import _extra, _kdiffusion, _timesteps, _unipc
from openesd.generation.sampling._kdiffusion import Noise, Sample
from openesd.generation.sampling.schedules import SCHEDULERS, SigmaPlan, find_scheduler

if TYPE_CHECKING:
    from torch import Tensor

    from openesd.generation.payload.settings import SamplerOptions

CHURN = ("s_churn", "s_tmin", "s_tmax", "s_noise")  # sampler_extra_params of sample_euler/heun/dpm_2
NOISE = ("s_noise",)


@dataclass(frozen=True)
class SamplerSpec:
    """One WebUI sampler: its coroutine and the options the WebUI gives it."""

    name: str
    function: Callable[..., Sample]
    aliases: tuple[str, ...] = ()
    default_scheduler: str | None = None  # the scheduler "Automatic" means for this sampler
    discard_next_to_last_sigma: bool = False
    second_order: bool = False
    brownian_noise: bool = False
    uses_ensd: bool = False
    timesteps: bool = False  # DDIM/PLMS: integer timesteps, VP latent returned (schedules.timesteps)
    lcm: bool = False  # LCM: the LCMCompVisDenoiser's sigmas (and denoiser)
    model_sigma_range: bool = False  # DPM fast: txt2img runs from the model's sigma_max to sigma_min
    unipc: bool = False  # UniPC: its own continuous-time levels (_unipc.unipc_levels)
    extra_params: tuple[str, ...] = ()  # the s_* options the WebUI passes
    eta_option: str | None = None  # the SamplerOptions field eta defaults to, when the function takes eta
    fixed: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    from_options: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # kwarg -> option


def _spec(name: str, function: Callable[..., Sample], *aliases: str, **options: Any) -> SamplerSpec:
    return SamplerSpec(name, function, aliases, **options)


_ANCESTRAL = {"eta_option": "eta_ancestral"}
SAMPLERS: dict[str, SamplerSpec] = {
    spec.name: spec
    for spec in (
        _spec("DPM++ 2M", _kdiffusion.dpmpp_2m, "k_dpmpp_2m", default_scheduler="karras"),
        _spec(
            "DPM++ SDE",
            _kdiffusion.dpmpp_sde,
            "k_dpmpp_sde",
            default_scheduler="karras",
            second_order=True,
            brownian_noise=True,
            extra_params=NOISE,
            **_ANCESTRAL,
        ),
        _spec(
            "DPM++ 2M SDE",
            _kdiffusion.dpmpp_2m_sde,
            "k_dpmpp_2m_sde",
            default_scheduler="exponential",
            brownian_noise=True,
            extra_params=NOISE,
            **_ANCESTRAL,
        ),
        _spec(
            "DPM++ 2M SDE Heun",
            _kdiffusion.dpmpp_2m_sde,
            "k_dpmpp_2m_sde_heun",
            default_scheduler="exponential",
            brownian_noise=True,
            extra_params=NOISE,
            fixed=MappingProxyType({"solver_type": "heun"}),
            **_ANCESTRAL,
        ),
        _spec(
            "DPM++ 2S a",
            _kdiffusion.dpmpp_2s_ancestral,
            "k_dpmpp_2s_a",
            default_scheduler="karras",
            uses_ensd=True,
            second_order=True,
            extra_params=NOISE,
            **_ANCESTRAL,
        ),
        _spec(
            "DPM++ 3M SDE",
            _kdiffusion.dpmpp_3m_sde,
            "k_dpmpp_3m_sde",
            default_scheduler="exponential",
            discard_next_to_last_sigma=True,
            brownian_noise=True,
            extra_params=NOISE,
            **_ANCESTRAL,
        ),
        _spec("Euler a", _kdiffusion.euler_ancestral, "k_euler_a", "k_euler_ancestral", uses_ensd=True, **_ANCESTRAL),
        _spec("Euler", _kdiffusion.euler, "k_euler", extra_params=CHURN),
        _spec("LMS", _kdiffusion.lms, "k_lms"),
        _spec("Heun", _kdiffusion.heun, "k_heun", second_order=True, extra_params=CHURN),
        _spec(
            "DPM2",
            _kdiffusion.dpm_2,
            "k_dpm_2",
            default_scheduler="karras",
            discard_next_to_last_sigma=True,
            second_order=True,
            extra_params=CHURN,
        ),
        _spec(
            "DPM2 a",
            _kdiffusion.dpm_2_ancestral,
            "k_dpm_2_a",
            default_scheduler="karras",
            discard_next_to_last_sigma=True,
            uses_ensd=True,
            second_order=True,
            extra_params=NOISE,
            **_ANCESTRAL,
        ),
        _spec(
            "DPM fast",
            _extra.dpm_fast,
            "k_dpm_fast",
            uses_ensd=True,
            model_sigma_range=True,
            extra_params=NOISE,
            **_ANCESTRAL,
        ),
        _spec("Restart", _extra.restart, "restart", default_scheduler="karras", second_order=True),
        _spec("DDIM", _timesteps.ddim, "ddim", timesteps=True, eta_option="eta_ddim"),
        _spec("PLMS", _timesteps.plms, "plms", timesteps=True),
        _spec(
            "UniPC",
            _unipc.unipc,
            "unipc",
            timesteps=True,
            unipc=True,
            from_options=MappingProxyType(
                {"variant": "uni_pc_variant", "order": "uni_pc_order", "lower_order_final": "uni_pc_lower_order_final"}
            ),
        ),
        _spec("LCM", _timesteps.lcm, "k_lcm", lcm=True),
    )
}

REFUSED: dict[str, str] = {
    "DPM adaptive": "its number of model calls depends on an error estimate at each step, so it cannot be "
    "known before sampling",
    "DDIM CFG++": "it needs the unconditional prediction besides the CFG-combined one, which the sampler "
    "protocol does not give",
}
_REFUSED_ALIASES = {"k_dpm_ad": "DPM adaptive", "ddim_cfgpp": "DDIM CFG++"}


def _find_sampler(name: str) -> SamplerSpec:
    wanted = name.strip().lower()
    for spec in SAMPLERS.values():
        if wanted in (spec.name.lower(), *spec.aliases):
            return spec
    refused = next((n for n in REFUSED if n.lower() == wanted), _REFUSED_ALIASES.get(wanted))
    if refused:
        raise UnsupportedFeature(f"Sampler {refused!r} is not supported: {REFUSED[refused]}")
    valid = ", ".join(SAMPLERS)
    raise UnsupportedFeature(f"Unknown sampler {name!r}; valid samplers: {valid}")


def _split_suffix(name: str) -> tuple[str, str | None]:
    """Old combined names ("DPM++ 2M Karras"): the sampler part and the scheduler label, as the WebUI's
    get_sampler_and_scheduler splits them."""
    for scheduler in SCHEDULERS:
        for option in (scheduler.label, scheduler.name, *scheduler.aliases):
            if name.endswith(" " + option):
                return name[: -len(option) - 1], scheduler.label
    return name, None


def resolve(name: str, scheduler: str | None) -> tuple[SamplerSpec, str]:
    """The sampler and scheduler label for a payload's sampler_name and scheduler.

    Accepts aliases (k_euler_a) and old combined names; an explicit scheduler other than "Automatic"
    wins over a name's suffix (the WebUI lets the suffix win: an explicit choice is kept here).
    """
    base, suffix = _split_suffix(name.strip())
    if not suffix or _is_known(name):
        base, suffix = name, None
    spec = _find_sampler(base)
    explicit = find_scheduler(scheduler).label if scheduler else "Automatic"
    label = explicit if explicit != "Automatic" else suffix or "Automatic"
    return spec, label


def _is_known(name: str) -> bool:
    wanted = name.strip().lower()
    return any(wanted in (s.name.lower(), *s.aliases) for s in SAMPLERS.values())


def eta(spec: SamplerSpec, options: SamplerOptions) -> float | None:
    """The eta the WebUI gives this sampler: the payload's, else its option (None: takes no eta)."""
    if spec.eta_option is None:
        return None
    return options.eta if options.eta is not None else float(getattr(options, spec.eta_option))


def _kwargs(spec: SamplerSpec, options: SamplerOptions) -> dict[str, Any]:
    kwargs: dict[str, Any] = dict(spec.fixed)
    for name in spec.extra_params:
        kwargs[name] = getattr(options, name)
    for name, option in spec.from_options.items():
        kwargs[name] = getattr(options, option)
    if "s_tmax" in kwargs:
        kwargs["s_tmax"] = kwargs["s_tmax"] or math.inf  # the WebUI: 0 means infinity
    value = eta(spec, options)
    if value is not None:
        kwargs["eta"] = value
    return kwargs


def start(
    spec: SamplerSpec,
    x: Tensor,
    sigmas: list[float],
    noise: Noise,
    options: SamplerOptions,
    extra: Mapping[str, Any] | None = None,
) -> Sample:
    """The sampler's coroutine over `sigmas` from latent `x`, with the WebUI's keyword arguments.

    `extra` is the SigmaPlan's `extra` (UniPC's alpha_t per level).
    """
    return spec.function(x, list(sigmas), noise, **_kwargs(spec, options), **(extra or {}))


def evaluations(
    spec: SamplerSpec, sigmas: list[float], options: SamplerOptions, extra: Mapping[str, Any] | None = None
) -> int:
    """How many times the sampler will ask for the model (a dry run on a one-element latent)."""
    import torch

    zero = torch.zeros(1, dtype=torch.float64)
    coroutine = start(spec, zero, sigmas, lambda sigma, sigma_next: zero, options, extra)
    count = 0
    try:
        next(coroutine)
        while True:
            count += 1
            coroutine.send(zero)
    except StopIteration:
        return count


def starting_latent(
    spec: SamplerSpec, plan: SigmaPlan, noise: Tensor, options: SamplerOptions, init_latent: Tensor | None = None
) -> Tensor:
    """The latent the sampler starts from: txt2img's unit noise, or img2img's init latent noised, as the WebUI.

    k-diffusion samplers: txt2img noise * sigma (sqrt(1 + sigma^2) with sgm_noise_multiplier, which the
    WebUI applies to txt2img only; sigma is plan.noise_sigma when set: DPM fast's schedule's first sigma);
    img2img init + noise * sigma. DDIM/PLMS/UniPC start from the VP
    latent (the unit noise, or sqrt(a) x0 + sqrt(1 - a) noise at plan.noise_sigma), returned in this
    (k-diffusion) space at sigmas[0]. The WebUI's img2img_extra_noise is not applied here.
    """
    sigma = plan.sigmas[0] if plan.noise_sigma is None else plan.noise_sigma
    if spec.timesteps:
        x_vp = noise if init_latent is None else (init_latent + noise * sigma) / math.sqrt(1 + sigma**2)
        return x_vp * math.sqrt(1 + plan.sigmas[0] ** 2)
    if init_latent is not None:
        return init_latent + noise * sigma
    return noise * (math.sqrt(1.0 + sigma**2) if options.sgm_noise_multiplier else sigma)


def sampler_params(spec: SamplerSpec, options: SamplerOptions, *, img2img: bool = False) -> dict[str, Any]:
    """The infotext entries the WebUI's sampler adds for these options, in its order: "SGM noise multiplier"
    (KDiffusionSampler.sample; its sample_img2img writes none), then Sampler.initialize's "Eta" / "Eta DDIM"
    and "Sigma churn" / "Sigma tmin" / "Sigma tmax" / "Sigma noise"."""
    params: dict[str, Any] = {}
    if options.sgm_noise_multiplier and not spec.timesteps and not img2img:
        params["SGM noise multiplier"] = True
    value = eta(spec, options)
    if value is not None and spec.timesteps and value != 0.0:
        params["Eta DDIM"] = value
    elif value is not None and not spec.timesteps and value != 1.0:
        params["Eta"] = value
    kwargs = _kwargs(spec, options)
    defaults = {"s_churn": 0.0, "s_tmin": 0.0, "s_tmax": math.inf, "s_noise": 1.0}
    labels = {"s_churn": "Sigma churn", "s_tmin": "Sigma tmin", "s_tmax": "Sigma tmax", "s_noise": "Sigma noise"}
    for name in spec.extra_params:
        if kwargs[name] != defaults[name]:
            params[labels[name]] = kwargs[name]
    return params
