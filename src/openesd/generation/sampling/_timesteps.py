"""The WebUI's timestep samplers (DDIM, PLMS) and LCM as coroutines (sampling/__init__.py protocol).

DDIM and PLMS work in the WebUI's VP form (x_t = sqrt(a) x0 + sqrt(1 - a) eps) on the alpha_bar of its
integer timesteps; here each level comes as its sigma (a = 1 / (1 + sigma^2)). `sigmas` is
schedules.timesteps: the evaluated levels, then the landing level, then 0. The model is asked at
(x_vp * sqrt(1 + sigma^2), sigma), which the k-diffusion-style driver scales back to exactly x_vp, and
eps = (x - denoised) / sigma. They return the VP latent at the landing level, as the WebUI does.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from openesd.generation.sampling._kdiffusion import Noise, Sample

if TYPE_CHECKING:
    from torch import Tensor


def _eps(x_vp: Tensor, sigma: float):
    """Ask for the model at a VP latent; gives its eps prediction."""
    x = x_vp * math.sqrt(1 + sigma * sigma)
    denoised = yield x, sigma
    return (x - denoised) / sigma


def _alpha(sigma: float) -> float:
    return 1 / (1 + sigma * sigma)


def ddim(x: Tensor, sigmas: list[float], noise: Noise, eta: float = 0.0) -> Sample:
    """sd_samplers_timesteps_impl.ddim: DDIM (Song et al. 2020) with eta."""
    x = x / math.sqrt(1 + sigmas[0] ** 2)
    for i in range(len(sigmas) - 2):
        a_t, a_prev = _alpha(sigmas[i]), _alpha(sigmas[i + 1])
        e_t = yield from _eps(x, sigmas[i])
        sigma_t = eta * math.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
        pred_x0 = (x - math.sqrt(1 - a_t) * e_t) / math.sqrt(a_t)
        dir_xt = math.sqrt(1.0 - a_prev - sigma_t**2) * e_t
        x = math.sqrt(a_prev) * pred_x0 + dir_xt
        if eta:  # the WebUI draws this noise every step; with eta 0 it is multiplied by 0 and unused
            x = x + sigma_t * noise(sigmas[i], sigmas[i + 1])
    return x


def plms(x: Tensor, sigmas: list[float], noise: Noise) -> Sample:
    """sd_samplers_timesteps_impl.plms: pseudo linear multistep (Liu et al. 2022), improved Euler first."""

    def step(x: Tensor, e_t: Tensor, i: int) -> Tensor:
        a_t, a_prev = _alpha(sigmas[i]), _alpha(sigmas[i + 1])
        pred_x0 = (x - math.sqrt(1 - a_t) * e_t) / math.sqrt(a_t)
        return math.sqrt(a_prev) * pred_x0 + math.sqrt(1.0 - a_prev) * e_t

    x = x / math.sqrt(1 + sigmas[0] ** 2)
    old_eps: list[Tensor] = []
    for i in range(len(sigmas) - 2):
        e_t = yield from _eps(x, sigmas[i])
        if not old_eps:
            e_t_next = yield from _eps(step(x, e_t, i), sigmas[i + 1])
            e_t_prime = (e_t + e_t_next) / 2
        elif len(old_eps) == 1:
            e_t_prime = (3 * e_t - old_eps[-1]) / 2
        elif len(old_eps) == 2:
            e_t_prime = (23 * e_t - 16 * old_eps[-1] + 5 * old_eps[-2]) / 12
        else:
            e_t_prime = (55 * e_t - 59 * old_eps[-1] + 37 * old_eps[-2] - 9 * old_eps[-3]) / 24
        x = step(x, e_t_prime, i)
        old_eps.append(e_t)
        if len(old_eps) >= 4:
            old_eps.pop(0)
    return x


def lcm(x: Tensor, sigmas: list[float], noise: Noise) -> Sample:
    """sd_samplers_lcm.sample_lcm: jump to the prediction, re-noise to the next sigma.

    Only the sampler: the LCM boundary condition (c_skip / c_out on the quantized timestep) belongs to
    the denoiser, the WebUI's LCMCompVisDenoiser, which the driver must apply.
    """
    for i in range(len(sigmas) - 1):
        x = yield x, sigmas[i]
        if sigmas[i + 1] > 0:
            x = x + sigmas[i + 1] * noise(sigmas[i], sigmas[i + 1])
    return x
