"""The WebUI 1.10's timestep samplers DDIM, DDIM CFG++ and PLMS in their integer-timestep form
(modules/sd_samplers_timesteps_impl.py, rewritten for the reference in `webui_reference`; no code
copied). They walk the timesteps from the top and stop one short: len(timesteps) - 1 model steps,
the last one landing on alphas_cumprod[timesteps[0]]. DDIM draws step noise at every step, eta 0
or not, so the draws stay aligned with the WebUI's generators.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

Eps = Callable[[torch.Tensor, int], torch.Tensor]


def ddim(
    eps: Eps,
    x: torch.Tensor,
    timesteps: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    eta: float,
    noise: Any,
    direction: Callable[[], torch.Tensor] | None = None,
) -> torch.Tensor:
    """DDIM; `direction` (CFG++: the last uncond eps) replaces eps in the direction term."""
    alphas = alphas_cumprod[timesteps].double()
    prev = alphas_cumprod[torch.nn.functional.pad(timesteps[:-1], pad=(1, 0))].double()
    sigmas = eta * ((1 - prev) / (1 - alphas) * (1 - alphas / prev)).sqrt()
    for index in range(len(timesteps) - 1, 0, -1):
        e_t = eps(x, int(timesteps[index]))
        a_t, a_prev, sigma_t = float(alphas[index]), float(prev[index]), float(sigmas[index])
        pred_x0 = (x - math.sqrt(1 - a_t) * e_t) / math.sqrt(a_t)
        toward = direction() if direction is not None else e_t
        x = math.sqrt(a_prev) * pred_x0 + math.sqrt(1 - a_prev - sigma_t**2) * toward + sigma_t * noise.next().to(x)
    return x


def plms(eps: Eps, x: torch.Tensor, timesteps: torch.Tensor, alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """PLMS: a pseudo improved-Euler first step, then Adams-Bashforth of order 2, 3, 4 on eps."""
    alphas = alphas_cumprod[timesteps].double()
    prev = alphas_cumprod[torch.nn.functional.pad(timesteps[:-1], pad=(1, 0))].double()

    def step(x: torch.Tensor, e: torch.Tensor, index: int) -> torch.Tensor:
        a_t, a_prev = float(alphas[index]), float(prev[index])
        pred_x0 = (x - math.sqrt(1 - a_t) * e) / math.sqrt(a_t)
        return math.sqrt(a_prev) * pred_x0 + math.sqrt(1 - a_prev) * e

    history: list[torch.Tensor] = []
    for index in range(len(timesteps) - 1, 0, -1):
        e_t = eps(x, int(timesteps[index]))
        if not history:
            e_next = eps(step(x, e_t, index), int(timesteps[max(index - 1, 0)]))
            e_prime = (e_t + e_next) / 2
        elif len(history) == 1:
            e_prime = (3 * e_t - history[-1]) / 2
        elif len(history) == 2:
            e_prime = (23 * e_t - 16 * history[-1] + 5 * history[-2]) / 12
        else:
            e_prime = (55 * e_t - 59 * history[-1] + 37 * history[-2] - 9 * history[-3]) / 24
        x = step(x, e_prime, index)
        history = (history + [e_t])[-3:]
    return x
