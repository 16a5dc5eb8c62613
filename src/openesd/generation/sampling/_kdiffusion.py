"""k-diffusion 0.1.1's samplers as coroutines (sampling/__init__.py protocol).

Each follows k_diffusion/sampling.py (MIT, Katherine Crowson) step for step, with the sigma arithmetic on
Python floats and the latent arithmetic in the same order on tensors. Noise is drawn where k-diffusion
draws it (its `torch.randn_like`, which the WebUI routes to its per-step generator, or its noise_sampler).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import Tensor

Noise = Callable[[float, float], "Tensor"]
Sample = Generator[tuple["Tensor", float], "Tensor", "Tensor"]


def ancestral_step(sigma_from: float, sigma_to: float, eta: float = 1.0) -> tuple[float, float]:
    """k-diffusion's get_ancestral_step: (sigma_down, sigma_up)."""
    if not eta:
        return sigma_to, 0.0
    sigma_up = min(sigma_to, eta * (sigma_to**2 * (sigma_from**2 - sigma_to**2) / sigma_from**2) ** 0.5)
    return (sigma_to**2 - sigma_up**2) ** 0.5, sigma_up


def _churn(x: Tensor, i: int, sigmas: list[float], noise: Noise, churn: tuple[float, float, float, float]):
    """Karras' "churn" of Euler/Heun/DPM2: (x, sigma_hat). k-diffusion draws its noise every step; with
    s_churn 0 the draws are discarded and nothing else reads that stream, so they are skipped."""
    s_churn, s_tmin, s_tmax, s_noise = churn
    sigma = sigmas[i]
    if not s_churn:
        return x, sigma
    gamma = min(s_churn / (len(sigmas) - 1), 2**0.5 - 1) if s_tmin <= sigma <= s_tmax else 0.0
    eps = noise(sigma, sigmas[i + 1]) * s_noise
    sigma_hat = sigma * (gamma + 1)
    if gamma > 0:
        x = x + eps * (sigma_hat**2 - sigma**2) ** 0.5
    return x, sigma_hat


def euler(
    x: Tensor, sigmas: list[float], noise: Noise, s_churn=0.0, s_tmin=0.0, s_tmax=math.inf, s_noise=1.0
) -> Sample:
    """Karras et al. (2022) Algorithm 2, Euler steps (sample_euler)."""
    for i in range(len(sigmas) - 1):
        x, sigma_hat = _churn(x, i, sigmas, noise, (s_churn, s_tmin, s_tmax, s_noise))
        denoised = yield x, sigma_hat
        d = (x - denoised) / sigma_hat
        x = x + d * (sigmas[i + 1] - sigma_hat)
    return x


def euler_ancestral(x: Tensor, sigmas: list[float], noise: Noise, eta=1.0, s_noise=1.0) -> Sample:
    """sample_euler_ancestral."""
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = yield x, sigma
        sigma_down, sigma_up = ancestral_step(sigma, sigma_next, eta)
        d = (x - denoised) / sigma
        x = x + d * (sigma_down - sigma)
        if sigma_next > 0:
            x = x + noise(sigma, sigma_next) * s_noise * sigma_up
    return x


def heun(x: Tensor, sigmas: list[float], noise: Noise, s_churn=0.0, s_tmin=0.0, s_tmax=math.inf, s_noise=1.0) -> Sample:
    """Karras et al. (2022) Algorithm 2, Heun steps (sample_heun)."""
    for i in range(len(sigmas) - 1):
        sigma_next = sigmas[i + 1]
        x, sigma_hat = _churn(x, i, sigmas, noise, (s_churn, s_tmin, s_tmax, s_noise))
        denoised = yield x, sigma_hat
        d = (x - denoised) / sigma_hat
        dt = sigma_next - sigma_hat
        if sigma_next == 0:
            x = x + d * dt
        else:
            x_2 = x + d * dt
            denoised_2 = yield x_2, sigma_next
            d_2 = (x_2 - denoised_2) / sigma_next
            x = x + (d + d_2) / 2 * dt
    return x


def _log_midpoint(a: float, b: float) -> float:
    return math.exp(math.log(b) - (math.log(b) - math.log(a)) * 0.5)  # torch.lerp(log a, log b, 0.5).exp()


def dpm_2(
    x: Tensor, sigmas: list[float], noise: Noise, s_churn=0.0, s_tmin=0.0, s_tmax=math.inf, s_noise=1.0
) -> Sample:
    """sample_dpm_2: DPM-Solver-2 steps in Karras' Algorithm 2."""
    for i in range(len(sigmas) - 1):
        sigma_next = sigmas[i + 1]
        x, sigma_hat = _churn(x, i, sigmas, noise, (s_churn, s_tmin, s_tmax, s_noise))
        denoised = yield x, sigma_hat
        d = (x - denoised) / sigma_hat
        if sigma_next == 0:
            x = x + d * (sigma_next - sigma_hat)
        else:
            sigma_mid = _log_midpoint(sigma_hat, sigma_next)
            x_2 = x + d * (sigma_mid - sigma_hat)
            denoised_2 = yield x_2, sigma_mid
            d_2 = (x_2 - denoised_2) / sigma_mid
            x = x + d_2 * (sigma_next - sigma_hat)
    return x


def dpm_2_ancestral(x: Tensor, sigmas: list[float], noise: Noise, eta=1.0, s_noise=1.0) -> Sample:
    """sample_dpm_2_ancestral (noise only after a second-order step, as in k-diffusion)."""
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = yield x, sigma
        sigma_down, sigma_up = ancestral_step(sigma, sigma_next, eta)
        d = (x - denoised) / sigma
        if sigma_down == 0:
            x = x + d * (sigma_down - sigma)
        else:
            sigma_mid = _log_midpoint(sigma, sigma_down)
            x_2 = x + d * (sigma_mid - sigma)
            denoised_2 = yield x_2, sigma_mid
            d_2 = (x_2 - denoised_2) / sigma_mid
            x = x + d_2 * (sigma_down - sigma)
            x = x + noise(sigma, sigma_next) * s_noise * sigma_up
    return x


def lms_coefficients(sigmas: list[float], order: int = 4) -> list[list[float]]:
    """k-diffusion's linear_multistep_coeff for every step (scipy quad), computed before sampling."""
    from scipy import integrate

    def coefficient(cur_order: int, i: int, j: int) -> float:
        def fn(tau: float) -> float:
            prod = 1.0
            for k in range(cur_order):
                if j != k:
                    prod *= (tau - sigmas[i - k]) / (sigmas[i - j] - sigmas[i - k])
            return prod

        return integrate.quad(fn, sigmas[i], sigmas[i + 1], epsrel=1e-4)[0]

    orders = [min(i + 1, order) for i in range(len(sigmas) - 1)]
    return [[coefficient(cur, i, j) for j in range(cur)] for i, cur in enumerate(orders)]


def lms(x: Tensor, sigmas: list[float], noise: Noise, order: int = 4) -> Sample:
    """sample_lms: linear multistep on the ODE derivative."""
    coefficients = lms_coefficients(sigmas, order)
    ds: list[Tensor] = []
    for i in range(len(sigmas) - 1):
        denoised = yield x, sigmas[i]
        ds.append((x - denoised) / sigmas[i])
        if len(ds) > order:
            ds.pop(0)
        x = x + sum(c * d for c, d in zip(coefficients[i], reversed(ds), strict=False))
    return x


def dpmpp_2s_ancestral(x: Tensor, sigmas: list[float], noise: Noise, eta=1.0, s_noise=1.0) -> Sample:
    """sample_dpmpp_2s_ancestral: DPM-Solver++(2S) with ancestral noise."""
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = yield x, sigma
        sigma_down, sigma_up = ancestral_step(sigma, sigma_next, eta)
        if sigma_down == 0:
            x = x + (x - denoised) / sigma * (sigma_down - sigma)
        else:
            t, t_next = -math.log(sigma), -math.log(sigma_down)
            h = t_next - t
            s = t + 0.5 * h
            x_2 = (math.exp(-s) / math.exp(-t)) * x - math.expm1(-h * 0.5) * denoised
            denoised_2 = yield x_2, math.exp(-s)
            x = (math.exp(-t_next) / math.exp(-t)) * x - math.expm1(-h) * denoised_2
        if sigma_next > 0:
            x = x + noise(sigma, sigma_next) * s_noise * sigma_up
    return x


def _sde_points(sigmas: list[float], r: float, device: Any) -> list[tuple[float, float, float]]:
    """DPM++ SDE's (sigma, midpoint, sigma_next) per step in float32, as k-diffusion's tensors give them.

    They are where the Brownian tree is queried: a last-bit difference in a query time changes the
    Brownian increment by about sqrt(ulp), so they are computed as k-diffusion does, on the latent's
    device where the WebUI keeps its sigmas, once before sampling.
    """
    import torch

    t = torch.tensor(sigmas[:-1], dtype=torch.float32, device=device).log().neg()
    t_next = torch.tensor(sigmas[1:], dtype=torch.float32, device=device).log().neg()
    s = t + (t_next - t) * r
    points = torch.stack([t.neg().exp(), s.neg().exp(), t_next.neg().exp()], dim=1).tolist()
    return [(a, b, c) for a, b, c in points]


def dpmpp_sde(x: Tensor, sigmas: list[float], noise: Noise, eta=1.0, s_noise=1.0, r=0.5) -> Sample:
    """sample_dpmpp_sde: DPM-Solver++ (stochastic), the noise at (sigma, midpoint) then (sigma, sigma_next)."""
    points = _sde_points(sigmas, r, x.device)
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = yield x, sigma
        if sigma_next == 0:
            x = x + (x - denoised) / sigma * (sigma_next - sigma)
            continue
        sigma_t, sigma_s, sigma_t_next = points[i]
        t = -math.log(sigma)
        fac = 1 / (2 * r)
        sd, su = ancestral_step(sigma_t, sigma_s, eta)
        s_ = -math.log(sd)
        x_2 = (math.exp(-s_) / math.exp(-t)) * x - math.expm1(t - s_) * denoised
        x_2 = x_2 + noise(sigma_t, sigma_s) * s_noise * su
        denoised_2 = yield x_2, sigma_s
        sd, su = ancestral_step(sigma_t, sigma_t_next, eta)
        t_next_ = -math.log(sd)
        denoised_d = (1 - fac) * denoised + fac * denoised_2
        x = (math.exp(-t_next_) / math.exp(-t)) * x - math.expm1(t - t_next_) * denoised_d
        x = x + noise(sigma_t, sigma_t_next) * s_noise * su
    return x


def dpmpp_2m(x: Tensor, sigmas: list[float], noise: Noise) -> Sample:
    """sample_dpmpp_2m: DPM-Solver++(2M)."""
    old_denoised = None
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = yield x, sigma
        if sigma_next == 0:  # k-diffusion: exp(-inf) = 0 times x, expm1(-inf) = -1
            x = denoised
        else:
            t, t_next = -math.log(sigma), -math.log(sigma_next)
            h = t_next - t
            denoised_d = denoised
            if old_denoised is not None:
                r = (t + math.log(sigmas[i - 1])) / h
                denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            x = (math.exp(-t_next) / math.exp(-t)) * x - math.expm1(-h) * denoised_d
        old_denoised = denoised
    return x


def dpmpp_2m_sde(
    x: Tensor, sigmas: list[float], noise: Noise, eta=1.0, s_noise=1.0, solver_type: str = "midpoint"
) -> Sample:
    """sample_dpmpp_2m_sde: DPM-Solver++(2M) SDE, midpoint or heun correction."""
    if solver_type not in {"heun", "midpoint"}:
        raise ValueError("solver_type must be 'heun' or 'midpoint'")
    old_denoised, h_last, h = None, 0.0, 0.0
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = yield x, sigma
        if sigma_next == 0:
            x = denoised
        else:
            h = math.log(sigma) - math.log(sigma_next)
            eta_h = eta * h
            x = sigma_next / sigma * math.exp(-eta_h) * x + -math.expm1(-h - eta_h) * denoised
            if old_denoised is not None:
                r = h_last / h
                if solver_type == "heun":
                    x = x + (-math.expm1(-h - eta_h) / (-h - eta_h) + 1) * (1 / r) * (denoised - old_denoised)
                else:
                    x = x + 0.5 * -math.expm1(-h - eta_h) * (1 / r) * (denoised - old_denoised)
            if eta:
                x = x + noise(sigma, sigma_next) * sigma_next * math.sqrt(-math.expm1(-2 * eta_h)) * s_noise
        old_denoised, h_last = denoised, h
    return x


def dpmpp_3m_sde(x: Tensor, sigmas: list[float], noise: Noise, eta=1.0, s_noise=1.0) -> Sample:
    """sample_dpmpp_3m_sde: DPM-Solver++(3M) SDE."""
    denoised_1: Any = None
    denoised_2: Any = None
    h, h_1, h_2 = 0.0, None, None
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = yield x, sigma
        if sigma_next == 0:
            x = denoised
        else:
            h = math.log(sigma) - math.log(sigma_next)
            h_eta = h * (eta + 1)
            x = math.exp(-h_eta) * x + -math.expm1(-h_eta) * denoised
            phi_2 = math.expm1(-h_eta) / h_eta + 1
            if h_2 is not None:
                r0, r1 = h_1 / h, h_2 / h
                d1_0 = (denoised - denoised_1) / r0
                d1_1 = (denoised_1 - denoised_2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                x = x + phi_2 * d1 - (phi_2 / h_eta - 0.5) * d2
            elif h_1 is not None:
                x = x + phi_2 * ((denoised - denoised_1) / (h_1 / h))
            if eta:
                x = x + noise(sigma, sigma_next) * sigma_next * math.sqrt(-math.expm1(-2 * h * eta)) * s_noise
        denoised_1, denoised_2 = denoised, denoised_1
        h_1, h_2 = h, h_1
    return x
