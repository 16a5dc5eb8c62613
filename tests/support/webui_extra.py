"""The WebUI 1.10's two samplers that k-diffusion does not have, rewritten for the reference in
`webui_reference` (the WebUI's files read to learn them, no code copied):

- Restart (modules/sd_samplers_extra.py, restart_sampler, Xu et al. 2023): `restart_sampler`, a
  k-diffusion-style function the WebUI's KDiffusionSampler runs like the others (Karras by default,
  no extra parameters: the sampler is a callable, not a name in sampler_extra_params).
- UniPC (modules/models/diffusion/uni_pc/uni_pc.py, Zhao et al. 2023, as
  sd_samplers_timesteps_impl.unipc drives it): `UniPC`, multistep, data prediction, no thresholding,
  on NoiseScheduleVP("discrete") of the model's alphas_cumprod.

Neither imports openesd.generation.sampling, which is what they measure.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch

from tests.support import kdiffusion


@torch.no_grad()
def restart_sampler(
    model: Any, x: torch.Tensor, sigmas: torch.Tensor, extra_args: Any = None, disable: Any = None, s_noise: float = 1.0
) -> torch.Tensor:
    """sd_samplers_extra.restart_sampler with its automatic restart list, on float32 sigma tensors.

    Below 20 steps it is Heun (Euler onto sigma 0). From 20 steps the schedule is rebuilt as Karras
    over steps - restart_steps * restart_times steps between sigmas[-2] and sigmas[0], and after the
    step that lands on the sigma nearest 0.1 a Karras segment of restart_steps + 1 sigmas from there up
    to the sigma nearest 2 (its final 0 dropped) is replayed restart_times times: 9 and once, or
    steps // 4 and twice from 36 steps. Going back up adds sqrt(old^2 - last^2) of step noise, drawn
    with k-diffusion's `torch.randn_like` (the WebUI's TorchHijack: the image generators).
    """
    ks = kdiffusion.sampling()
    s_in = x.new_ones([x.shape[0]])
    steps = sigmas.shape[0] - 1
    restarts: dict[float, tuple[int, int, float]] = {}
    if steps >= 20:
        restart_steps, restart_times = (steps // 4, 2) if steps >= 36 else (9, 1)
        sigmas = ks.get_sigmas_karras(steps - restart_steps * restart_times, sigmas[-2].item(), sigmas[0].item())
        restarts = {0.1: (restart_steps + 1, restart_times, 2.0)}
    at_index = {int(torch.argmin(abs(sigmas - key))): value for key, value in restarts.items()}

    pairs = []
    for i in range(len(sigmas) - 1):
        pairs.append((sigmas[i], sigmas[i + 1]))
        if i + 1 in at_index:
            n, times, top = at_index[i + 1]
            high = int(torch.argmin(abs(sigmas - top)))
            if high < i + 1:
                segment = ks.get_sigmas_karras(n, sigmas[i + 1].item(), sigmas[high].item())[:-1]
                pairs += list(zip(segment[:-1], segment[1:], strict=True)) * times

    last = None
    for old, new in pairs:
        if last is not None and last < old:
            x = x + ks.torch.randn_like(x) * s_noise * (old**2 - last**2) ** 0.5
        denoised = model(x, old * s_in)
        d = (x - denoised) / old
        if new == 0:
            x = x + d * (new - old)
        else:
            x_2 = x + d * (new - old)
            d_2 = (x_2 - model(x_2, new * s_in)) / new
            x = x + (d + d_2) / 2 * (new - old)
        last = new
    return x


Eps = Callable[[torch.Tensor, float], torch.Tensor]


class UniPC:
    """The WebUI's UniPC: UniPC.sample(method="multistep", predict_x0=True, thresholding off), in VP form.

    Time is NoiseScheduleVP("discrete")'s continuous t in (0, 1]: log alpha_t = 0.5 log alphas_cumprod
    interpolated linearly over t_n = n / N; the model (`eps(x_vp, t_input)`, the CFG-combined eps of
    CFGDenoiserTimesteps) is asked at t_input = (t - 1/N) * 1000 (UniPCCFG.get_model_input_time),
    unrounded. Computed on float64 scalars; `calls` counts the model evaluations.
    """

    def __init__(self, alphas_cumprod: torch.Tensor, eps: Eps, variant: str = "bh1"):
        self.total = len(alphas_cumprod)
        self.t_array = np.linspace(0.0, 1.0, self.total + 1)[1:]
        self.log_alpha = (0.5 * torch.log(alphas_cumprod.float())).double().numpy()
        self.eps, self.variant = eps, variant
        self.calls = 0

    def log_alpha_t(self, t: float) -> float:
        return float(np.interp(t, self.t_array, self.log_alpha))

    def lam(self, t: float) -> float:
        """NoiseScheduleVP.marginal_lambda: log(alpha_t / sigma_t)."""
        la = self.log_alpha_t(t)
        return la - 0.5 * math.log(1 - math.exp(2 * la))

    def x0(self, x: torch.Tensor, t: float) -> torch.Tensor:
        """data_prediction_fn: (x - sigma_t * eps) / alpha_t."""
        self.calls += 1
        eps = self.eps(x, (t - 1 / self.total) * 1000)
        alpha = math.exp(self.log_alpha_t(t))
        return (x - math.sqrt(1 - alpha**2) * eps) / alpha

    def time_steps(self, skip_type: str, n: int, t_start: float) -> list[float]:
        """UniPC.get_time_steps from t_start down to 1/N: uniform in t, in sqrt(t), or in lambda (logSNR)."""
        t_end = 1 / self.total
        if skip_type == "time_uniform":
            return torch.linspace(t_start, t_end, n + 1).tolist()
        if skip_type == "time_quadratic":
            return torch.linspace(t_start**0.5, t_end**0.5, n + 1).pow(2).tolist()
        if skip_type != "logSNR":
            raise ValueError(f"unknown uni_pc_skip_type {skip_type!r}")
        lambdas = torch.linspace(self.lam(t_start), self.lam(t_end), n + 1).double()
        log_alpha = -0.5 * torch.logaddexp(torch.zeros(1, dtype=torch.float64), -2 * lambdas)
        return np.interp(log_alpha.numpy(), self.log_alpha[::-1], self.t_array[::-1]).tolist()

    def update(self, x, models, ts, t, order, corrector):
        """multistep_uni_pc_update: the bh (bh1: B(h) = h, bh2: expm1(h)) or vary_coeff predictor, and
        the corrector (one more model call, whose result the next step reuses) unless told not to."""
        lam0, lam_t = self.lam(ts[-1]), self.lam(t)
        sigma0 = math.sqrt(1 - math.exp(2 * self.log_alpha_t(ts[-1])))
        alpha_t = math.exp(self.log_alpha_t(t))
        sigma_t = math.sqrt(1 - alpha_t**2)
        h = lam_t - lam0
        rks = [(self.lam(ts[-(i + 1)]) - lam0) / h for i in range(1, order)]
        d1s = [(models[-(i + 1)] - models[-1]) / rk for i, rk in enumerate(rks, start=1)]
        rks = torch.tensor([*rks, 1.0], dtype=torch.float64)
        hh = -h
        x_t_ = sigma_t / sigma0 * x - alpha_t * math.expm1(hh) * models[-1]
        if self.variant == "vary_coeff":
            return self.vary(x_t_, models, d1s, rks, hh, alpha_t, t, corrector)
        b_h = hh if self.variant == "bh1" else math.expm1(hh)
        r = torch.stack([rks ** (i - 1) for i in range(1, order + 1)])
        b, h_phi_k, fact = [], math.expm1(hh) / hh - 1, 1
        for i in range(1, order + 1):
            b.append(h_phi_k * fact / b_h)
            fact *= i + 1
            h_phi_k = h_phi_k / hh - 1 / fact
        b = torch.tensor(b, dtype=torch.float64)
        pred = 0
        if d1s:
            rhos_p = torch.tensor([0.5]) if order == 2 else torch.linalg.solve(r[:-1, :-1], b[:-1])
            pred = sum(rho.item() * d for rho, d in zip(rhos_p, d1s, strict=False))
        x_t = x_t_ - alpha_t * b_h * pred
        if not corrector:
            return x_t, None
        rhos_c = torch.tensor([0.5]) if order == 1 else torch.linalg.solve(r, b)
        model_t = self.x0(x_t, t)
        corr = sum(rho.item() * d for rho, d in zip(rhos_c[:-1], d1s, strict=False))
        return x_t_ - alpha_t * b_h * (corr + rhos_c[-1].item() * (model_t - models[-1])), model_t

    def vary(self, x_t_, models, d1s, rks, hh, alpha_t, t, corrector):
        """multistep_uni_pc_vary_update: the coefficients from the inverse of the rk power matrix."""
        size = len(rks)
        cols, col = [], torch.ones_like(rks)
        for k in range(1, size + 1):
            cols.append(col)
            col = col * rks / (k + 1)
        c = torch.stack(cols, dim=1)
        phis, fact, phi = [], 1, math.expm1(hh)
        for k in range(1, size + 2):
            phis.append(phi)
            phi = phi / hh - 1 / fact
            fact *= k + 1
        x_t = x_t_
        if d1s:
            a_p = torch.linalg.inv(c[:-1, :-1])
            for k in range(size - 1):
                x_t = x_t - alpha_t * phis[k + 1] * sum(a.item() * d for a, d in zip(a_p[k], d1s, strict=False))
        if not corrector:
            return x_t, None
        a_c = torch.linalg.inv(c)
        model_t = self.x0(x_t, t)
        x_t, k = x_t_, 0
        for k in range(size - 1):
            x_t = x_t - alpha_t * phis[k + 1] * sum(a.item() * d for a, d in zip(a_c[k][:-1], d1s, strict=False))
        return x_t - alpha_t * phis[size] * ((model_t - models[-1]) * a_c[k][-1].item()), model_t

    def sample(
        self,
        x: torch.Tensor,
        steps: int,
        order: int = 3,
        skip_type: str = "time_uniform",
        lower_order_final: bool = True,
        t_start: float = 1.0,
    ) -> torch.Tensor:
        """steps + 1 levels from t_start (img2img: the WebUI's timesteps[-1] / 1000 + 1 / 1000): warm-up
        steps of order 1, 2, ..., then `order` (lower at the end with lower_order_final); the last step
        has no corrector, and the VP latent there is returned (denoise_to_zero off). steps model calls."""
        ts = self.time_steps(skip_type, steps, t_start)
        models, prev = [self.x0(x, ts[0])], [ts[0]]
        for init in range(1, order):
            x, model_x = self.update(x, models, prev, ts[init], init, True)
            models.append(model_x)
            prev.append(ts[init])
        for step in range(order, steps + 1):
            step_order = min(order, steps + 1 - step) if lower_order_final else order
            x, model_x = self.update(x, models, prev, ts[step], step_order, step != steps)
            for i in range(order - 1):
                prev[i], models[i] = prev[i + 1], models[i + 1]
            prev[-1] = ts[step]
            if step < steps:
                models[-1] = model_x
        return x
