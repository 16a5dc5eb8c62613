"""The WebUI 1.10's scheduler sigma lists (modules/sd_schedulers.py, rewritten for the reference in
`webui_reference`; no code copied). Karras, Exponential and Polyexponential are k-diffusion's own
functions; the rest follow the WebUI: SGM Uniform and Normal space the model's fractional timesteps
evenly (SGM Uniform drops the last one), Simple and DDIM pick from the model's discrete sigmas, Beta
spaces the model's sigma range by the Beta(0.6, 0.6) quantiles, KL Optimal spaces arctan(sigma)
evenly and ends at sigma_min without a final 0, Align Your Steps interpolates NVIDIA's SD 1.5 / SDXL
lists. sigma_min and sigma_max are always the model's smallest and largest sigma.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from tests.support import kdiffusion

SCHEDULERS = (
    "Automatic",
    "Uniform",
    "Karras",
    "Exponential",
    "Polyexponential",
    "SGM Uniform",
    "KL Optimal",
    "Align Your Steps",
    "Simple",
    "Normal",
    "DDIM",
    "Beta",
)

_AYS = {
    "sd": [14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029],
    "sdxl": [14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029],
}


def sigma_list(model: Any, name: str, n: int, beta: tuple[float, float] = (0.6, 0.6)) -> torch.Tensor:
    """n steps of a named schedule (not "Automatic"), on `model`'s sigmas (webui_reference.DiscreteModel)."""
    ks = kdiffusion.sampling()
    smin, smax = model.sigmas[0].item(), model.sigmas[-1].item()
    if name == "Uniform":
        return model.get_sigmas(n)
    if name == "Karras":
        return ks.get_sigmas_karras(n, smin, smax, rho=7.0)
    if name == "Exponential":
        return ks.get_sigmas_exponential(n, smin, smax)
    if name == "Polyexponential":
        return ks.get_sigmas_polyexponential(n, smin, smax, rho=1.0)
    if name in ("SGM Uniform", "Normal"):
        start, end = model.sigma_to_t(torch.tensor(smax)), model.sigma_to_t(torch.tensor(smin))
        ts = (
            torch.linspace(float(start), float(end), n + 1)[:-1]
            if name == "SGM Uniform"
            else torch.linspace(float(start), float(end), n)
        )
        return torch.tensor([float(model.t_to_sigma(t)) for t in ts] + [0.0])
    if name == "KL Optimal":  # ends at sigma_min, without a final 0, as the WebUI's does
        i = torch.arange(n + 1)
        return torch.tan(i / n * math.atan(smin) + (1.0 - i / n) * math.atan(smax))
    if name == "Align Your Steps":
        return align_your_steps(_AYS["sdxl" if model.is_sdxl else "sd"], n)
    if name == "Simple":
        ss = len(model.sigmas) / n
        return torch.tensor([float(model.sigmas[-(1 + int(x * ss))]) for x in range(n)] + [0.0])
    if name == "DDIM":
        ss = max(len(model.sigmas) // n, 1)
        picked = [float(model.sigmas[x]) for x in range(1, len(model.sigmas), ss)]
        return torch.tensor(picked[::-1] + [0.0])
    if name == "Beta":
        from scipy import stats

        xs = [stats.beta.ppf(x, *beta) for x in 1 - np.linspace(0, 1, n)]
        return torch.tensor([smin + x * (smax - smin) for x in xs] + [0.0])
    raise ValueError(f"unknown WebUI scheduler {name!r}")


def align_your_steps(sigmas: list[float], n: int) -> torch.Tensor:
    """The published 10-step list, log-linearly interpolated to n steps when n differs."""
    if n == len(sigmas):
        return torch.tensor(sigmas + [0.0])
    ys = np.log(sigmas[::-1])
    interpolated = np.exp(np.interp(np.linspace(0, 1, n), np.linspace(0, 1, len(sigmas)), ys))[::-1]
    return torch.tensor(np.append(interpolated, [0.0]), dtype=torch.float32)


def integer_timesteps(n: int) -> torch.Tensor:
    """The timestep samplers' timesteps (sd_samplers_timesteps.CompVisSampler.get_timesteps)."""
    return torch.clip(torch.arange(0, 1000, 1000 // n) + 1, 0, 999)
