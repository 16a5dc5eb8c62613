"""UniPC (Zhao et al. 2023) as the WebUI 1.10 runs it: multistep, data prediction, no thresholding.

The WebUI's copy of the UniPC reference code (modules/models/diffusion/uni_pc) works in VP form on its
own continuous time t in [1/N, 1]: alpha_t interpolates log alpha_bar linearly between the integer
timesteps, and the model is given the fractional timestep (t - 1/N) * 1000. Here each level comes as
the sigma of that model timestep (k-diffusion's log-sigma interpolation, so the driver's sigma_to_t
gives the model exactly the WebUI's timestep) plus UniPC's own alpha_t (`alphas`, from unipc_levels);
the two differ between integer timesteps, by up to ~1e-4 near t = 0. The model is asked at
(x_vp * sqrt(1 + sigma^2), sigma) as in _timesteps; the VP latent at the last level is returned, as
the WebUI does (denoise_to_zero is off there).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from openesd.generation.sampling._kdiffusion import Noise, Sample
from openesd.generation.sampling._timesteps import _eps

if TYPE_CHECKING:
    from torch import Tensor


if TYPE_CHECKING:
    from openesd.generation.sampling.schedules import ModelSigmas


def unipc_levels(
    steps: int, model: ModelSigmas, skip_type: str, t_start: float = 1.0
) -> tuple[list[float], list[float]]:
    """UniPC's steps + 1 levels (UniPC.get_time_steps, from t_start to 1/N): (sigmas then 0, alpha_t)."""
    import numpy as np
    import torch

    from openesd.errors import UnsupportedFeature

    total = len(model.sigmas)
    t_array = torch.linspace(0.0, 1.0, total + 1)[1:].double().numpy()
    log_alpha = (0.5 * torch.log(model.alphas_cumprod.float())).double().numpy()
    t_0 = 1.0 / total
    if skip_type == "time_uniform":
        t = torch.linspace(t_start, t_0, steps + 1)
    elif skip_type == "time_quadratic":
        t = torch.linspace(t_start**0.5, t_0**0.5, steps + 1).pow(2)
    elif skip_type == "logSNR":  # lambda uniform, then NoiseScheduleVP.inverse_lambda
        ends = (float(np.interp(t_start, t_array, log_alpha)), log_alpha[0])
        lambda_t, lambda_0 = (la - 0.5 * math.log(1 - math.exp(2 * la)) for la in ends)
        lambdas = torch.linspace(lambda_t, lambda_0, steps + 1).double()
        target = (-0.5 * torch.logaddexp(torch.zeros(1, dtype=torch.float64), -2 * lambdas)).numpy()
        t = torch.tensor(np.interp(target, log_alpha[::-1], t_array[::-1]), dtype=torch.float32)
    else:
        raise UnsupportedFeature(f"Unknown uni_pc_skip_type {skip_type!r}; valid: time_uniform, time_quadratic, logSNR")
    # float32 rounding can put the last t a hair below t_0 (time_quadratic): the model's t is then 0
    sigmas = model.t_to_sigma(((t - t_0) * 1000.0).clamp(0, total - 1)).tolist()
    alphas = np.exp(np.interp(t.double().numpy(), t_array, log_alpha)).tolist()
    return [*sigmas, 0.0], alphas


class _Levels:
    def __init__(self, sigmas: list[float], alphas: list[float] | None) -> None:
        self.sigma = sigmas
        self.alpha = alphas or [1 / math.sqrt(1 + s * s) for s in sigmas]
        self.std = [math.sqrt(1 - a * a) for a in self.alpha]
        self.lam = [math.log(a) - math.log(s) for a, s in zip(self.alpha, self.std, strict=True)]

    def x0(self, x: Tensor, k: int):
        """The data prediction at level k (UniPC's data_prediction_fn)."""
        eps = yield from _eps(x, self.sigma[k])
        return (x - self.std[k] * eps) / self.alpha[k]


def _weighted(weights: Any, tensors: list[Tensor]) -> Tensor | float:
    total: Tensor | float = 0.0
    for w, t in zip(weights, tensors, strict=False):
        total = total + float(w) * t
    return total


def _bh_update(levels: _Levels, x, models, prev: list[int], k: int, order: int, variant: str, corrector: bool):
    """multistep_uni_pc_bh_update with predict_x0 (B(h) = h for bh1, expm1(h) for bh2)."""
    import numpy as np

    p0 = prev[-1]
    h = levels.lam[k] - levels.lam[p0]
    rks = [(levels.lam[prev[-(i + 1)]] - levels.lam[p0]) / h for i in range(1, order)]
    d1s = [(models[-(i + 1)] - models[-1]) / rk for i, rk in enumerate(rks, start=1)]
    rks.append(1.0)
    hh = -h
    h_phi_1 = math.expm1(hh)
    h_phi_k = h_phi_1 / hh - 1
    b_h = hh if variant == "bh1" else math.expm1(hh)
    rows, b, factorial = [], [], 1
    for i in range(1, order + 1):
        rows.append([rk ** (i - 1) for rk in rks])
        b.append(h_phi_k * factorial / b_h)
        factorial *= i + 1
        h_phi_k = h_phi_k / hh - 1 / factorial
    r, bv = np.array(rows), np.array(b)
    alpha_t = levels.alpha[k]
    x_t_ = (levels.std[k] / levels.std[p0]) * x - (alpha_t * h_phi_1) * models[-1]
    rhos_p = [0.5] if order == 2 else (np.linalg.solve(r[:-1, :-1], bv[:-1]) if d1s else [])
    x_t = x_t_ - (alpha_t * b_h) * _weighted(rhos_p, d1s)
    if not corrector:
        return x_t, None
    rhos_c = [0.5] if order == 1 else np.linalg.solve(r, bv)
    model_t = yield from levels.x0(x_t, k)
    correction = _weighted(rhos_c[:-1], d1s) + float(rhos_c[-1]) * (model_t - models[-1])
    return x_t_ - (alpha_t * b_h) * correction, model_t


def _vary_update(levels: _Levels, x, models, prev: list[int], k: int, order: int, corrector: bool):
    """multistep_uni_pc_vary_update with predict_x0 (the "vary_coeff" variant)."""
    import numpy as np

    p0 = prev[-1]
    h = levels.lam[k] - levels.lam[p0]
    rks = [(levels.lam[prev[-(i + 1)]] - levels.lam[p0]) / h for i in range(1, order)]
    d1s = [(models[-(i + 1)] - models[-1]) / rk for i, rk in enumerate(rks, start=1)]
    rks.append(1.0)
    size = len(rks)
    columns, column = [], np.ones(size)
    for j in range(1, size + 1):
        columns.append(column)
        column = column * np.array(rks) / (j + 1)
    c = np.stack(columns, axis=1)
    hh = -h
    h_phi_ks, factorial, h_phi_k = [], 1, math.expm1(hh)
    for j in range(1, size + 2):
        h_phi_ks.append(h_phi_k)
        h_phi_k = h_phi_k / hh - 1 / factorial
        factorial *= j + 1
    alpha_t = levels.alpha[k]
    x_t_ = (levels.std[k] / levels.std[p0]) * x - (alpha_t * h_phi_ks[0]) * models[-1]
    x_t = x_t_
    if d1s:
        a_p = np.linalg.inv(c[:-1, :-1])
        for j in range(size - 1):
            x_t = x_t - (alpha_t * h_phi_ks[j + 1]) * _weighted(a_p[j], d1s)
    if not corrector:
        return x_t, None
    a_c = np.linalg.inv(c)
    model_t = yield from levels.x0(x_t, k)
    x_t, last = x_t_, 0
    for last in range(size - 1):
        x_t = x_t - (alpha_t * h_phi_ks[last + 1]) * _weighted(a_c[last][:-1], d1s)
    return x_t - (alpha_t * h_phi_ks[size]) * ((model_t - models[-1]) * float(a_c[last][-1])), model_t


def unipc(
    x: Tensor,
    sigmas: list[float],
    noise: Noise,
    variant: str = "bh1",
    order: int = 3,
    lower_order_final: bool = True,
    alphas: list[float] | None = None,
) -> Sample:
    """UniPC.sample(method="multistep") over the levels sigmas[:-1]: len(sigmas) - 2 model calls."""
    from openesd.errors import UnsupportedFeature

    steps = len(sigmas) - 2
    if steps < order:
        raise UnsupportedFeature(f"UniPC order {order} needs at least {order} steps, got {steps}")
    levels = _Levels(sigmas[:-1], alphas)

    def update(x, models, prev, k, step_order, corrector):
        if variant in ("bh1", "bh2"):
            return (yield from _bh_update(levels, x, models, prev, k, step_order, variant, corrector))
        return (yield from _vary_update(levels, x, models, prev, k, step_order, corrector))

    x = x / math.sqrt(1 + sigmas[0] ** 2)
    models = [(yield from levels.x0(x, 0))]
    prev = [0]
    for k in range(1, order):
        x, model_x = yield from update(x, models, prev, k, k, True)
        models.append(model_x)
        prev.append(k)
    for k in range(order, steps + 1):
        step_order = min(order, steps + 1 - k) if lower_order_final else order
        x, model_x = yield from update(x, models, prev, k, step_order, k != steps)
        models, prev = models[1:] + models[-1:], prev[1:] + [k]
        if k < steps:
            models[-1] = model_x
    return x
