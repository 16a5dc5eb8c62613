"""The WebUI 1.10's scheduler functions (sd_schedulers.py): each sigma list as the WebUI computes it.

k-diffusion's get_sigmas_* (MIT, Katherine Crowson) are followed line for line; the others follow the
WebUI's formulas: float32 torch on the CPU, numpy float64 where the WebUI uses numpy.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from openesd.generation.sampling.schedules import ModelSigmas

# The WebUI's Align Your Steps tables (sd_schedulers.py, from NVIDIA's AYS how-to), 10 steps + sigma_min.
AYS_SD15 = (14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029)
AYS_SDXL = (14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029)
BETA_DIST_DEFAULT = 0.6  # the WebUI's beta_dist_alpha / beta_dist_beta defaults


@dataclass(frozen=True)
class Scheduler:
    """One entry of the WebUI's sd_schedulers.schedulers list."""

    name: str
    label: str
    function: Callable[..., torch.Tensor] | None
    default_rho: float = -1
    need_inner_model: bool = False
    aliases: tuple[str, ...] = ()


def append_zero(x: torch.Tensor) -> torch.Tensor:
    import torch

    return torch.cat([x, x.new_zeros([1])])


def uniform(n: int, sigma_min: float, sigma_max: float, inner_model: ModelSigmas) -> torch.Tensor:
    return inner_model.get_sigmas(n)


def karras(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. (2022), k-diffusion get_sigmas_karras."""
    import torch

    ramp = torch.linspace(0, 1, n)
    min_inv_rho = sigma_min ** (1 / rho)
    max_inv_rho = sigma_max ** (1 / rho)
    return append_zero((max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho)


def exponential(n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    import torch

    return append_zero(torch.linspace(math.log(sigma_max), math.log(sigma_min), n).exp())


def polyexponential(n: int, sigma_min: float, sigma_max: float, rho: float = 1.0) -> torch.Tensor:
    import torch

    ramp = torch.linspace(1, 0, n) ** rho
    return append_zero(torch.exp(ramp * (math.log(sigma_max) - math.log(sigma_min)) + math.log(sigma_min)))


def sgm_uniform(n: int, sigma_min: float, sigma_max: float, inner_model: ModelSigmas) -> torch.Tensor:
    import torch

    start = inner_model.sigma_to_t(torch.tensor(sigma_max))
    end = inner_model.sigma_to_t(torch.tensor(sigma_min))
    sigmas = [float(inner_model.t_to_sigma(t)) for t in torch.linspace(start, end, n + 1)[:-1]]
    return torch.tensor([*sigmas, 0.0], dtype=torch.float32)


def align_your_steps(n: int, sigma_min: float, sigma_max: float, is_sdxl: bool) -> torch.Tensor:
    """The AYS table of the model family, log-linearly interpolated (numpy float64) to n steps."""
    import numpy as np
    import torch

    table = list(AYS_SDXL if is_sdxl else AYS_SD15)
    if n == len(table):
        return torch.tensor([*table, 0.0], dtype=torch.float32)
    xs = np.linspace(0, 1, len(table))
    ys = np.log(table[::-1])
    interpolated = np.exp(np.interp(np.linspace(0, 1, n), xs, ys))[::-1]
    return torch.tensor(np.append(interpolated, [0.0]), dtype=torch.float32)


def kl_optimal(n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """The WebUI's KL Optimal: n + 1 sigmas ending in sigma_min, not 0 (its last step does not reach 0)."""
    import torch

    alpha_min = torch.arctan(torch.tensor(sigma_min))
    alpha_max = torch.arctan(torch.tensor(sigma_max))
    step = torch.arange(n + 1)
    return torch.tan(step / n * alpha_min + (1.0 - step / n) * alpha_max)


def simple(n: int, sigma_min: float, sigma_max: float, inner_model: ModelSigmas) -> torch.Tensor:
    import torch

    stride = len(inner_model.sigmas) / n
    sigmas = [float(inner_model.sigmas[-(1 + int(x * stride))]) for x in range(n)]
    return torch.tensor([*sigmas, 0.0], dtype=torch.float32)


def normal(n: int, sigma_min: float, sigma_max: float, inner_model: ModelSigmas) -> torch.Tensor:
    import torch

    start = inner_model.sigma_to_t(torch.tensor(sigma_max))
    end = inner_model.sigma_to_t(torch.tensor(sigma_min))
    sigmas = [float(inner_model.t_to_sigma(t)) for t in torch.linspace(start, end, n)]
    return torch.tensor([*sigmas, 0.0], dtype=torch.float32)


def ddim(n: int, sigma_min: float, sigma_max: float, inner_model: ModelSigmas) -> torch.Tensor:
    """Every (1000 // n)-th sigma from timestep 1 up: may give more than n steps, as in the WebUI."""
    import torch

    stride = max(len(inner_model.sigmas) // n, 1)
    sigmas = [float(inner_model.sigmas[x]) for x in range(1, len(inner_model.sigmas), stride)]
    return torch.tensor([*sigmas[::-1], 0.0], dtype=torch.float32)


def beta(
    n: int, sigma_min: float, sigma_max: float, inner_model: ModelSigmas, alpha: float, beta: float
) -> torch.Tensor:
    """Lee et al. (2024), "Beta Sampling is All You Need": scipy's beta quantiles of 1 - linspace(0, 1, n)."""
    import numpy as np
    import torch
    from scipy import stats

    quantiles = [stats.beta.ppf(x, alpha, beta) for x in 1 - np.linspace(0, 1, n)]
    return torch.tensor([*(sigma_min + x * (sigma_max - sigma_min) for x in quantiles), 0.0], dtype=torch.float32)


SCHEDULERS = (
    Scheduler("automatic", "Automatic", None),
    Scheduler("uniform", "Uniform", uniform, need_inner_model=True),
    Scheduler("karras", "Karras", karras, default_rho=7.0),
    Scheduler("exponential", "Exponential", exponential),
    Scheduler("polyexponential", "Polyexponential", polyexponential, default_rho=1.0),
    Scheduler("sgm_uniform", "SGM Uniform", sgm_uniform, need_inner_model=True, aliases=("SGMUniform",)),
    Scheduler("kl_optimal", "KL Optimal", kl_optimal),
    Scheduler("align_your_steps", "Align Your Steps", align_your_steps),
    Scheduler("simple", "Simple", simple, need_inner_model=True),
    Scheduler("normal", "Normal", normal, need_inner_model=True),
    Scheduler("ddim", "DDIM", ddim, need_inner_model=True),
    Scheduler("beta", "Beta", beta, need_inner_model=True),
)
