"""DPM fast (k-diffusion's DPMSolver.dpm_solver_fast, MIT) and the WebUI's Restart sampler as coroutines.

Both have a fixed number of model calls known before sampling, unlike DPM adaptive.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from openesd.generation.sampling._kdiffusion import Noise, Sample, ancestral_step

if TYPE_CHECKING:
    from torch import Tensor


def _eps(x: Tensor, t: float):
    sigma = math.exp(-t)
    denoised = yield x, sigma
    return (x - denoised) / sigma


def _dpm_solver_step(x: Tensor, t: float, t_next: float, order: int, eps: Tensor):
    """DPM-Solver-1/2/3 steps from (x, t) with eps known at t (Lu et al. 2022), t = -log sigma."""
    h = t_next - t
    sigma_next = math.exp(-t_next)
    if order == 1:
        return x - sigma_next * math.expm1(h) * eps
    if order == 2:
        r1 = 1 / 2
        s1 = t + r1 * h
        u1 = x - math.exp(-s1) * math.expm1(r1 * h) * eps
        eps_r1 = yield from _eps(u1, s1)
        return x - sigma_next * math.expm1(h) * eps - sigma_next / (2 * r1) * math.expm1(h) * (eps_r1 - eps)
    r1, r2 = 1 / 3, 2 / 3
    s1, s2 = t + r1 * h, t + r2 * h
    u1 = x - math.exp(-s1) * math.expm1(r1 * h) * eps
    eps_r1 = yield from _eps(u1, s1)
    u2 = (
        x
        - math.exp(-s2) * math.expm1(r2 * h) * eps
        - math.exp(-s2) * (r2 / r1) * (math.expm1(r2 * h) / (r2 * h) - 1) * (eps_r1 - eps)
    )
    eps_r2 = yield from _eps(u2, s2)
    return x - sigma_next * math.expm1(h) * eps - sigma_next / r2 * (math.expm1(h) / h - 1) * (eps_r2 - eps)


def dpm_fast(
    x: Tensor,
    sigmas: list[float],
    noise: Noise,
    eta: float = 0.0,
    s_noise: float = 1.0,
    sigma_min: float | None = None,
    sigma_max: float | None = None,
) -> Sample:
    """sample_dpm_fast from sigma_max to sigma_min with len(sigmas) - 1 model calls.

    The WebUI passes the model's sigma_min / sigma_max and n = steps (txt2img: the plan's `extra`), or
    sigma_sched[-2], sigma_sched[0] and len(sigma_sched) - 1 (img2img: the defaults here).
    """
    import torch

    nfe = len(sigmas) - 1
    if nfe < 1:
        return x
    sigma_max = sigmas[0] if sigma_max is None else sigma_max
    sigma_min = sigmas[-2] if sigma_min is None else sigma_min
    t_start, t_end = (float(-torch.tensor(s).log()) for s in (sigma_max, sigma_min))
    m = nfe // 3 + 1
    ts = torch.linspace(t_start, t_end, m + 1).tolist()  # float32, as k-diffusion's t tensors
    orders = [3] * (m - 2) + [2, 1] if nfe % 3 == 0 else [3] * (m - 1) + [nfe % 3]
    for i, order in enumerate(orders):
        t, t_next = ts[i], ts[i + 1]
        t_next_, su = t_next, 0.0
        if eta:
            sd, su = ancestral_step(math.exp(-t), math.exp(-t_next), eta)
            t_next_ = min(t_end, -math.log(sd))
            su = (math.exp(-t_next) ** 2 - math.exp(-t_next_) ** 2) ** 0.5
        eps = yield from _eps(x, t)
        x = yield from _dpm_solver_step(x, t, t_next_, order, eps)
        x = x + su * s_noise * noise(math.exp(-t), math.exp(-t_next))
    return x


def restart_plan(sigmas: list[float]) -> list[tuple[float, float]]:
    """The (old_sigma, new_sigma) Heun steps of the WebUI's restart_sampler (Xu et al. 2023).

    With 20+ steps the schedule is rebuilt as Karras over fewer steps and a Karras segment from the
    sigma nearest 0.1 back up to the one nearest 2 is replayed once (twice from 36 steps).
    """
    import torch

    from openesd.generation.sampling._schedulers import karras

    tensor = torch.tensor(sigmas, dtype=torch.float32)
    steps = len(sigmas) - 1
    restarts: dict[float, tuple[int, int, float]] = {}
    if steps >= 20:
        restart_steps, restart_times = (steps // 4, 2) if steps >= 36 else (9, 1)
        tensor = karras(steps - restart_steps * restart_times, float(tensor[-2]), float(tensor[0]))
        restarts = {0.1: (restart_steps + 1, restart_times, 2.0)}
    at_index = {int(torch.argmin(abs(tensor - key), dim=0)): value for key, value in restarts.items()}
    values = tensor.tolist()
    plan = []
    for i in range(len(values) - 1):
        plan.append((values[i], values[i + 1]))
        if i + 1 in at_index:
            restart_steps, restart_times, restart_max = at_index[i + 1]
            max_idx = int(torch.argmin(abs(tensor - restart_max), dim=0))
            if max_idx < i + 1:
                segment = karras(restart_steps, values[i + 1], values[max_idx])[:-1].tolist()
                plan.extend(list(zip(segment[:-1], segment[1:], strict=True)) * restart_times)
    return plan


def restart(x: Tensor, sigmas: list[float], noise: Noise, s_noise: float = 1.0) -> Sample:
    """sd_samplers_extra.restart_sampler: Heun steps, re-noised by sqrt(old^2 - last^2) when going back up."""
    last_sigma = None
    for old_sigma, new_sigma in restart_plan(sigmas):
        if last_sigma is None:
            last_sigma = old_sigma
        elif last_sigma < old_sigma:
            x = x + noise(old_sigma, new_sigma) * s_noise * (old_sigma**2 - last_sigma**2) ** 0.5
        denoised = yield x, old_sigma
        d = (x - denoised) / old_sigma
        dt = new_sigma - old_sigma
        if new_sigma == 0:
            x = x + d * dt
        else:
            x_2 = x + d * dt
            denoised_2 = yield x_2, new_sigma
            x = x + (d + (x_2 - denoised_2) / new_sigma) / 2 * dt
        last_sigma = new_sigma
    return x
