"""A1111 sampler (and scheduler) names -> a diffusers scheduler built from the pipeline's own config.

Old combined names ("DPM++ 2M Karras") and the newer split (`sampler_name` "DPM++ 2M" +
`scheduler` "Karras") both work. Names with no diffusers equivalent fail and say so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from openesd.errors import UnsupportedFeature

if TYPE_CHECKING:
    from openesd.generation.job import PreparedModel


@dataclass(frozen=True)
class Sampler:
    scheduler: str  # diffusers class name
    options: dict[str, Any] = field(default_factory=dict)


_DPMPP = "DPMSolverMultistepScheduler"
_SDE = {"algorithm_type": "sde-dpmsolver++"}
SAMPLERS: dict[str, Sampler] = {
    "Euler": Sampler("EulerDiscreteScheduler"),
    "Euler a": Sampler("EulerAncestralDiscreteScheduler"),
    "LMS": Sampler("LMSDiscreteScheduler"),
    "Heun": Sampler("HeunDiscreteScheduler"),
    "DPM2": Sampler("KDPM2DiscreteScheduler"),
    "DPM2 a": Sampler("KDPM2AncestralDiscreteScheduler"),
    # diffusers has no ancestral single-step DPM++; the deterministic single-step solver is nearest.
    "DPM++ 2S a": Sampler("DPMSolverSinglestepScheduler"),
    "DPM++ 2M": Sampler(_DPMPP),
    # A1111's "DPM++ SDE" is the single-step SDE solver (torchsde); the multistep SDE solver of
    # diffusers is used instead so that no extra dependency is needed.
    "DPM++ SDE": Sampler(_DPMPP, _SDE),
    "DPM++ 2M SDE": Sampler(_DPMPP, _SDE),
    "DPM++ 2M SDE Heun": Sampler(_DPMPP, {**_SDE, "solver_type": "heun"}),
    "DPM++ 3M SDE": Sampler(_DPMPP, {**_SDE, "solver_order": 3}),
    "DDIM": Sampler("DDIMScheduler"),
    "DDPM": Sampler("DDPMScheduler"),
    "PLMS": Sampler("PNDMScheduler", {"skip_prk_steps": True}),
    "UniPC": Sampler("UniPCMultistepScheduler"),
    "LCM": Sampler("LCMScheduler"),
}
# Scheduler (sigma schedule) names of A1111 1.9+ and the option each sets.
SCHEDULES: dict[str, dict[str, Any]] = {
    "Automatic": {},
    "Uniform": {},
    "Karras": {"use_karras_sigmas": True},
    "Exponential": {"use_exponential_sigmas": True},
    "Beta": {"use_beta_sigmas": True},
    "SGM Uniform": {"timestep_spacing": "trailing"},
}
NO_EQUIVALENT = {
    "DPM fast": "it picks its own step count",
    "DPM adaptive": "it picks its own step count",
    "Restart": "diffusers has no Restart sampler",
    "Simple": "diffusers has no 'Simple' sigma schedule",
    "Normal": "diffusers has no 'Normal' sigma schedule",
    "KL Optimal": "diffusers has no 'KL Optimal' sigma schedule",
    "Align Your Steps": "diffusers needs explicit Align Your Steps timesteps",
    "Polyexponential": "diffusers has no polyexponential sigma schedule",
}
# Classes that take a Karras/exponential/beta sigma schedule.
_SIGMA_CLASSES = {
    "EulerDiscreteScheduler",
    "LMSDiscreteScheduler",
    "HeunDiscreteScheduler",
    "KDPM2DiscreteScheduler",
    "KDPM2AncestralDiscreteScheduler",
    "DPMSolverSinglestepScheduler",
    _DPMPP,
    "UniPCMultistepScheduler",
    "EulerAncestralDiscreteScheduler",
}


def sampler_names() -> list[str]:
    """Every accepted combined name: each sampler alone and with each non-default schedule suffix."""
    names = list(SAMPLERS)
    for name, sampler in SAMPLERS.items():
        if sampler.scheduler in _SIGMA_CLASSES:
            names += [f"{name} {s}" for s in ("Karras", "Exponential")]
    return names


def split_name(name: str, scheduler: str | None) -> tuple[str, str]:
    """("DPM++ 2M Karras", None) -> ("DPM++ 2M", "Karras"); an explicit scheduler wins over a suffix."""
    base, schedule = name.strip(), "Automatic"
    for suffix in ("Karras", "Exponential"):
        if base.endswith(" " + suffix) and base[: -len(suffix) - 1] in SAMPLERS:
            base, schedule = base[: -len(suffix) - 1], suffix
    if scheduler and scheduler != "Automatic":
        schedule = scheduler
    return base, schedule


def resolve(name: str, scheduler: str | None = None) -> Sampler:
    """The diffusers class and options for an A1111 sampler name (+ optional scheduler name)."""
    base, schedule = split_name(name, scheduler)
    if base in NO_EQUIVALENT or schedule in NO_EQUIVALENT:
        bad = base if base in NO_EQUIVALENT else schedule
        raise UnsupportedFeature(
            f"Sampler '{bad}' is not supported: {NO_EQUIVALENT[bad]}. Valid samplers: {', '.join(sampler_names())}"
        )
    if base not in SAMPLERS:
        raise UnsupportedFeature(f"Sampler '{name}' is not known. Valid samplers: {', '.join(sampler_names())}")
    if schedule not in SCHEDULES:
        raise UnsupportedFeature(f"Scheduler '{schedule}' is not known. Valid schedulers: {', '.join(SCHEDULES)}")
    sampler = SAMPLERS[base]
    options = SCHEDULES[schedule]
    if options and sampler.scheduler not in _SIGMA_CLASSES and "timestep_spacing" not in options:
        raise UnsupportedFeature(f"Sampler '{base}' cannot use the '{schedule}' schedule in diffusers")
    return Sampler(sampler.scheduler, {**sampler.options, **options})


def build_scheduler(base_config: dict[str, Any], sampler: Sampler) -> Any:
    """A fresh scheduler of the sampler's class from the checkpoint's scheduler config."""
    import diffusers

    cls = getattr(diffusers, sampler.scheduler)
    config = {k: v for k, v in base_config.items() if not k.startswith("_")}
    # The base config comes from a different class; drop sigma options it may carry over.
    for key in (
        "use_karras_sigmas",
        "use_exponential_sigmas",
        "use_beta_sigmas",
        "algorithm_type",
        "solver_order",
        "solver_type",
        "skip_prk_steps",
    ):
        config.pop(key, None)
    if sampler.scheduler in ("DDIMScheduler", "DDPMScheduler", "PNDMScheduler", "LCMScheduler"):
        config["clip_sample"] = False
    return cls.from_config({**config, **sampler.options})


def scheduler_for(model: PreparedModel, name: str, schedule: str | None) -> Any:
    """The scheduler a job asks for, built from the prepared model's own scheduler config."""
    return build_scheduler(dict(model.pipe.scheduler.config), resolve(name, schedule))
