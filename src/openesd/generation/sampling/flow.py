"""Sigmas and the Euler sampler of the flow-matching families (FLUX.1, SD 3.5), under the WebUI's names.

Forge runs these models through the WebUI 1.10's scheduler functions (sd_schedulers.py) on a flow
"model" whose sigma of timestep t is the shifted t (`shift * t / (1 + (shift - 1) * t)`, which is FLUX's
`exp(mu) / (exp(mu) + 1/t - 1)` with shift = exp(mu)); so do we, with `_schedulers`' own functions.
The sampler is Euler on the velocity: x <- x + (sigma_next - sigma) * v, diffusers'
FlowMatchEulerDiscreteScheduler step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from openesd.errors import UnsupportedFeature
from openesd.generation.sampling import _schedulers

if TYPE_CHECKING:
    import torch

SAMPLERS = ("Euler",)
SCHEDULERS = {"Simple": _schedulers.simple, "Normal": _schedulers.normal, "Beta": _schedulers.beta}
DEFAULT_SCHEDULER = "Simple"  # "Automatic" (or none): what Forge's FLUX preset and diffusers use
# The discrete timesteps of each family's flow model: Forge's PredictionFlux has 10000, SD 3's 1000.
TIMESTEPS = {"flux": 10000, "sd3": 1000}


def shifted(t: float, shift: float) -> float:
    """The flow model's sigma at time t in (0, 1] (time_snr_shift)."""
    return shift * t / (1 + (shift - 1) * t)


class FlowSigmas:
    """The flow model as the WebUI's scheduler functions see it: ascending sigmas, sigma <-> t.

    As in Forge (and ComfyUI), t is the sigma itself (times a multiplier) and t_to_sigma shifts it:
    the "Normal" schedule therefore shifts twice, which is what their users' pictures come from.
    """

    def __init__(self, shift: float, timesteps: int) -> None:
        import torch

        self.shift = shift
        t = torch.arange(1, timesteps + 1) / timesteps  # float32, as Forge's predictor
        self.sigmas = shift * t / (1 + (shift - 1) * t)

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])

    def sigma_to_t(self, sigma: Any) -> Any:
        return sigma

    def t_to_sigma(self, t: Any) -> Any:
        import torch

        return torch.as_tensor(shifted(float(t), self.shift))


def check_sampler(sampler_name: str, scheduler: str | None) -> str:
    """The schedule label the job runs ("Automatic" and none are Simple); anything else fails naming the valid."""
    name = sampler_name.strip()
    if name not in SAMPLERS:
        raise UnsupportedFeature(
            f"sampler {sampler_name!r} is not available for FLUX.1 / SD 3.5; valid: {', '.join(SAMPLERS)}"
        )
    if scheduler in (None, "", "Automatic", "automatic"):
        return DEFAULT_SCHEDULER
    for label in SCHEDULERS:
        if scheduler.lower() == label.lower():
            return label
    valid = ", ".join(["Automatic", *SCHEDULERS])
    raise UnsupportedFeature(f"scheduler {scheduler!r} is not available for FLUX.1 / SD 3.5; valid: {valid}")


def model_shift(config: Mapping[str, Any], image_tokens: int, shift: float | None = None) -> float:
    """The shift of this job: the user's, else the scheduler config's (FLUX.1-dev's grows with the image:
    diffusers' `mu` from base_shift at base_image_seq_len to max_shift at max_image_seq_len)."""
    if shift is not None:
        return shift
    if config.get("use_dynamic_shifting"):
        base_len, max_len = config.get("base_image_seq_len", 256), config.get("max_image_seq_len", 4096)
        base, top = config.get("base_shift", 0.5), config.get("max_shift", 1.15)
        slope = (top - base) / (max_len - base_len)
        return math.exp(image_tokens * slope + base - slope * base_len)
    return float(config.get("shift", 1.0))


def schedule(
    scheduler: str, steps: int, shift: float, family: str, beta_alpha: float = 0.6, beta_beta: float = 0.6
) -> list[float]:
    """steps + 1 sigmas from 1.0 down to 0 (the WebUI scheduler of that label on the flow model)."""
    model = FlowSigmas(shift, TIMESTEPS[family])
    function = SCHEDULERS[scheduler]
    args: dict[str, Any] = {"inner_model": model}
    if scheduler == "Beta":
        args.update(alpha=beta_alpha, beta=beta_beta)
    sigmas = function(steps, model.sigma_min, model.sigma_max, **args)
    return [float(s) for s in sigmas]


def img2img_sigmas(sigmas: list[float], steps: int, denoising_strength: float) -> list[float]:
    """The WebUI's img2img tail of a `steps` schedule: t_enc = int(min(strength, 0.999) * steps) steps + 1."""
    t_enc = int(min(denoising_strength, 0.999) * steps)
    return sigmas[steps - t_enc - 1 :]


def noised(latent: torch.Tensor, noise: torch.Tensor, sigma: float) -> torch.Tensor:
    """The flow forward process (Forge's "const" noise scaling): sigma * noise + (1 - sigma) * latent."""
    return sigma * noise + (1.0 - sigma) * latent


@dataclass
class InpaintMask:
    """Latent-space inpainting as the WebUI does it: after each step, unmasked latents are the init latent
    noised to the next sigma (mask 1 = repaint)."""

    mask: torch.Tensor  # (1, 1, h, w) or (B, 1, h, w), 0/1
    latent: torch.Tensor
    noise: torch.Tensor

    def blend(self, x: torch.Tensor, sigma_next: float) -> torch.Tensor:
        kept = noised(self.latent, self.noise, sigma_next)
        return self.mask * x + (1 - self.mask) * kept


Velocity = Callable[["torch.Tensor", float, int], "torch.Tensor"]  # (x, sigma, step) -> v


def euler(
    velocity: Velocity,
    x: torch.Tensor,
    sigmas: list[float],
    on_step: Callable[[int, torch.Tensor], None] | None = None,
    inpaint: InpaintMask | None = None,
) -> torch.Tensor:
    """FlowMatch Euler over the sigmas (float32 state, as diffusers' scheduler steps it). `on_step` hears each
    step's index and its prediction of the clean latent, x - sigma * v (what live previews show)."""
    x = x.float()
    for i, (sigma, sigma_next) in enumerate(zip(sigmas[:-1], sigmas[1:])):
        v = velocity(x, sigma, i).float()
        denoised = x - sigma * v
        x = x + (sigma_next - sigma) * v
        if inpaint is not None:
            x = inpaint.blend(x, sigma_next)
        if on_step is not None:
            on_step(i, denoised)
    return x
