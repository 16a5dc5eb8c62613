"""Each sampler coroutine against k-diffusion's own function (or, for the WebUI's own samplers, the WebUI's
algorithm written out here) on an analytic denoiser, with the same sigmas and the same noise."""

from __future__ import annotations

import inspect
import math
from collections import deque

import numpy as np
import pytest
import torch

from openesd.errors import UnsupportedFeature
from openesd.generation.payload.settings import SamplerOptions
from openesd.generation.sampling.samplers import REFUSED, SAMPLERS, evaluations, resolve, start
from openesd.generation.sampling.schedules import SCHEDULERS, ModelSigmas, sigma_plan, timesteps
from tests.support.kdiffusion import sampling

SD_CONFIG = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000}
SHAPE = (2, 4, 6, 6)
TOLERANCE = 1e-5
K_FUNCTIONS = {
    "Euler": "sample_euler",
    "Euler a": "sample_euler_ancestral",
    "LMS": "sample_lms",
    "Heun": "sample_heun",
    "DPM2": "sample_dpm_2",
    "DPM2 a": "sample_dpm_2_ancestral",
    "DPM++ 2S a": "sample_dpmpp_2s_ancestral",
    "DPM++ 2M": "sample_dpmpp_2m",
    "DPM++ SDE": "sample_dpmpp_sde",
    "DPM++ 2M SDE": "sample_dpmpp_2m_sde",
    "DPM++ 2M SDE Heun": "sample_dpmpp_2m_sde",
    "DPM++ 3M SDE": "sample_dpmpp_3m_sde",
}


@pytest.fixture(scope="module")
def model() -> ModelSigmas:
    return ModelSigmas.from_config(SD_CONFIG)


def denoise(x: torch.Tensor, sigma) -> torch.Tensor:
    """The exact denoiser of N(mu, s^2) data, plus a mild nonlinearity so higher-order terms matter."""
    sigma = sigma if isinstance(sigma, float) else sigma.reshape(-1, *([1] * (x.ndim - 1)))
    mu, s2 = 0.3, 0.5**2
    return (x * s2 + mu * sigma**2) / (s2 + sigma**2) + 0.1 * torch.tanh(x / (1 + sigma))


class Counted:
    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


def noises(n: int = 200) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1234)
    return [torch.randn(SHAPE, generator=generator) for _ in range(n)]


def drive(coroutine) -> tuple[torch.Tensor, int]:
    calls = 0
    try:
        x, sigma = next(coroutine)
        while True:
            calls += 1
            x, sigma = coroutine.send(denoise(x, sigma))
    except StopIteration as stop:
        return stop.value, calls


def ours(name: str, x: torch.Tensor, sigmas: list[float], options: SamplerOptions) -> tuple[torch.Tensor, int]:
    queue = deque(noises())
    return drive(start(SAMPLERS[name], x, sigmas, lambda sigma, sigma_next: queue.popleft(), options))


class _TorchHijack:
    """The WebUI's TorchHijack: k-diffusion's torch.randn_like hands out the pre-drawn noise in order."""

    def __init__(self, queue: deque):
        self.queue = queue

    def randn_like(self, x):
        return self.queue.popleft()

    def __getattr__(self, item):
        return getattr(torch, item)


def theirs(monkeypatch, function: str, x, sigmas: list[float], **kwargs) -> tuple[torch.Tensor, int]:
    ks = sampling()
    queue = deque(noises())
    monkeypatch.setattr(ks, "torch", _TorchHijack(queue))
    fn = getattr(ks, function)
    if "noise_sampler" in inspect.signature(fn).parameters:
        kwargs["noise_sampler"] = lambda sigma, sigma_next: queue.popleft()
    model = Counted(denoise)
    result = fn(model, x, torch.tensor(sigmas, dtype=torch.float32), disable=True, **kwargs)
    return result, model.calls


def webui_kwargs(name: str, options: SamplerOptions) -> dict:
    """What KDiffusionSampler.initialize passes (sampler_extra_params, eta, solver_type)."""
    fn = getattr(sampling(), K_FUNCTIONS.get(name, "sample_euler"))
    params = inspect.signature(fn).parameters
    extra = {"Euler": ["s_churn", "s_tmin", "s_tmax", "s_noise"], "Heun": ["s_churn", "s_tmin", "s_tmax", "s_noise"]}
    extra["DPM2"] = extra["Euler"]
    names = extra.get(name, ["s_noise"] if name not in ("Euler a", "LMS", "DPM++ 2M") else [])
    kwargs = {p: getattr(options, p) for p in names if p in params}
    if "eta" in params:
        kwargs["eta"] = options.eta if options.eta is not None else options.eta_ancestral
    if name == "DPM++ 2M SDE Heun":
        kwargs["solver_type"] = "heun"
    return kwargs


def start_latent(sigmas: list[float]) -> torch.Tensor:
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(7)) * sigmas[0]


@pytest.mark.parametrize("scheduler", [s.label for s in SCHEDULERS])
@pytest.mark.parametrize("name", list(K_FUNCTIONS))
def test_k_diffusion_samplers_match(monkeypatch, model, name, scheduler):
    options = SamplerOptions()
    sigmas = sigma_plan(scheduler, SAMPLERS[name], 8, model, options).sigmas
    x = start_latent(sigmas)
    expected, expected_calls = theirs(monkeypatch, K_FUNCTIONS[name], x, sigmas, **webui_kwargs(name, options))
    got, calls = ours(name, x, sigmas, options)
    assert (got - expected).abs().max().item() < TOLERANCE
    assert calls == expected_calls == evaluations(SAMPLERS[name], sigmas, options)


@pytest.mark.parametrize(
    "name", ["Euler", "Heun", "DPM2", "Euler a", "DPM2 a", "DPM++ 2S a", "DPM++ SDE", "DPM++ 3M SDE"]
)
def test_options_reach_the_sampler(monkeypatch, model, name):
    options = SamplerOptions(s_churn=0.6, s_tmin=0.5, s_tmax=8.0, s_noise=1.01, eta=0.7)
    sigmas = sigma_plan("Karras", SAMPLERS[name], 10, model, options).sigmas
    x = start_latent(sigmas)
    expected, _ = theirs(monkeypatch, K_FUNCTIONS[name], x, sigmas, **webui_kwargs(name, options))
    got, _ = ours(name, x, sigmas, options)
    assert (got - expected).abs().max().item() < TOLERANCE
    default, _ = ours(name, x, sigmas, SamplerOptions())
    assert (got - default).abs().max().item() > 1e-3


@pytest.mark.parametrize(("eta", "steps"), [(1.0, 10), (0.0, 9), (0.5, 2)])
def test_dpm_fast_matches(monkeypatch, model, eta, steps):
    options = SamplerOptions(eta=eta)
    sigmas = sigma_plan("Automatic", SAMPLERS["DPM fast"], steps, model, options).sigmas
    x = start_latent(sigmas)
    kwargs = {"eta": eta, "s_noise": 1.0}
    expected, expected_calls = _dpm_fast(monkeypatch, x, model, steps, kwargs)
    got, calls = ours("DPM fast", x, sigmas, options)
    assert (got - expected).abs().max().item() < TOLERANCE
    assert calls == expected_calls == steps == evaluations(SAMPLERS["DPM fast"], sigmas, options)


def _dpm_fast(monkeypatch, x, model, steps, kwargs):
    ks = sampling()
    queue = deque(noises())
    monkeypatch.setattr(ks, "torch", _TorchHijack(queue))
    counted = Counted(denoise)
    noise_sampler = lambda sigma, sigma_next: queue.popleft()  # noqa: E731
    result = ks.sample_dpm_fast(
        counted, x, model.sigma_min, model.sigma_max, steps, disable=True, noise_sampler=noise_sampler, **kwargs
    )
    return result, counted.calls


def _restart_reference(x, sigmas: torch.Tensor, queue: deque) -> tuple[torch.Tensor, int]:
    """sd_samplers_extra.restart_sampler (the WebUI's), on float32 sigma tensors as there."""
    karras = sampling().get_sigmas_karras
    steps, restart = len(sigmas) - 1, {}
    if steps >= 20:
        restart_steps, restart_times = (steps // 4, 2) if steps >= 36 else (9, 1)
        sigmas = karras(steps - restart_steps * restart_times, sigmas[-2].item(), sigmas[0].item())
        restart = {int(torch.argmin(abs(sigmas - 0.1))): (restart_steps + 1, restart_times, 2)}
    pairs = []
    for i in range(len(sigmas) - 1):
        pairs.append((sigmas[i], sigmas[i + 1]))
        if i + 1 in restart:
            n, times, top = restart[i + 1]
            high = int(torch.argmin(abs(sigmas - top)))
            if high < i + 1:
                segment = karras(n, sigmas[i + 1].item(), sigmas[high].item())[:-1]
                pairs += list(zip(segment[:-1], segment[1:], strict=True)) * times
    calls, last = 0, None
    for old, new in pairs:
        if last is not None and last < old:
            x = x + queue.popleft() * (old**2 - last**2) ** 0.5
        last = old if last is None else last
        denoised = denoise(x, old.reshape(1))
        calls += 1
        d = (x - denoised) / old
        if new == 0:
            x = x + d * (new - old)
        else:
            x_2 = x + d * (new - old)
            calls += 1
            x = x + (d + (x_2 - denoise(x_2, new.reshape(1))) / new) / 2 * (new - old)
        last = new
    return x, calls


@pytest.mark.parametrize("steps", [8, 24, 40])
def test_restart_matches_the_webuis_algorithm(model, steps):
    options = SamplerOptions()
    sigmas = sigma_plan("Automatic", SAMPLERS["Restart"], steps, model, options).sigmas
    x = start_latent(sigmas)
    expected, expected_calls = _restart_reference(x, torch.tensor(sigmas), deque(noises()))
    got, calls = ours("Restart", x, sigmas, options)
    assert (got - expected).abs().max().item() < TOLERANCE
    assert calls == expected_calls == evaluations(SAMPLERS["Restart"], sigmas, options)
    assert calls == 2 * steps - 1  # the restart segments replace steps of the main schedule
    heun, _ = ours("Heun", x, sigmas, options)
    assert ((got - heun).abs().max().item() > 1e-3) == (steps >= 20)


# --- the WebUI's timestep samplers, in its integer-timestep VP form (sd_samplers_timesteps_impl.py)


def _alphas_cumprod() -> torch.Tensor:
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    return torch.tensor(np.cumprod(1.0 - betas.numpy()), dtype=torch.float32)


def _eps_model(alphas_cumprod: torch.Tensor):
    """An eps-prediction model at integer timesteps equivalent to `denoise`."""

    def eps(x_vp: torch.Tensor, t: int) -> torch.Tensor:
        a = alphas_cumprod[t].item()
        sigma = math.sqrt((1 - a) / a)
        x = x_vp / math.sqrt(a)
        return (x - denoise(x, sigma)) / sigma

    return Counted(eps)


def _ddim_reference(x, ts: list[int], eta: float, queue: deque) -> tuple[torch.Tensor, int]:
    ac = _alphas_cumprod()
    model = _eps_model(ac)
    prev = [ts[0], *ts[:-1]]
    for index in range(len(ts) - 1, 0, -1):
        a_t, a_prev = ac[ts[index]].item(), ac[prev[index]].item()
        e_t = model(x, ts[index])
        sigma_t = eta * math.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
        pred_x0 = (x - math.sqrt(1 - a_t) * e_t) / math.sqrt(a_t)
        x = math.sqrt(a_prev) * pred_x0 + math.sqrt(1 - a_prev - sigma_t**2) * e_t + sigma_t * queue.popleft()
    return x, model.calls


def _plms_reference(x, ts: list[int]) -> tuple[torch.Tensor, int]:
    ac = _alphas_cumprod()
    model = _eps_model(ac)

    def step(x, e_t, index):
        a_t, a_prev = ac[ts[index]].item(), ac[ts[index - 1]].item()
        pred_x0 = (x - math.sqrt(1 - a_t) * e_t) / math.sqrt(a_t)
        return math.sqrt(a_prev) * pred_x0 + math.sqrt(1 - a_prev) * e_t

    old: list[torch.Tensor] = []
    for index in range(len(ts) - 1, 0, -1):
        e_t = model(x, ts[index])
        if not old:
            prime = (e_t + model(step(x, e_t, index), ts[index - 1])) / 2
        elif len(old) == 1:
            prime = (3 * e_t - old[-1]) / 2
        elif len(old) == 2:
            prime = (23 * e_t - 16 * old[-1] + 5 * old[-2]) / 12
        else:
            prime = (55 * e_t - 59 * old[-1] + 37 * old[-2] - 9 * old[-3]) / 24
        x = step(x, prime, index)
        old = [*old, e_t][-3:]
    return x, model.calls


@pytest.mark.parametrize(("steps", "eta"), [(10, 0.0), (7, 0.0), (12, 0.6), (2, 1.0)])
def test_ddim_matches_the_webuis_algorithm(model, steps, eta):
    options = SamplerOptions(eta_ddim=eta)
    sigmas = sigma_plan("Automatic", SAMPLERS["DDIM"], steps, model, options).sigmas
    noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(3))
    ts = timesteps(steps)
    expected, expected_calls = _ddim_reference(noise, ts, eta, deque(noises()))
    got, calls = ours("DDIM", noise * math.sqrt(1 + sigmas[0] ** 2), sigmas, options)
    assert (got - expected).abs().max().item() < TOLERANCE
    assert calls == expected_calls == len(ts) - 1 == evaluations(SAMPLERS["DDIM"], sigmas, options)


@pytest.mark.parametrize("steps", [10, 3, 30])
def test_plms_matches_the_webuis_algorithm(model, steps):
    options = SamplerOptions()
    sigmas = sigma_plan("Automatic", SAMPLERS["PLMS"], steps, model, options).sigmas
    noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(3))
    ts = timesteps(steps)
    expected, expected_calls = _plms_reference(noise, ts)
    got, calls = ours("PLMS", noise * math.sqrt(1 + sigmas[0] ** 2), sigmas, options)
    assert (got - expected).abs().max().item() < TOLERANCE
    assert calls == expected_calls == len(ts) == evaluations(SAMPLERS["PLMS"], sigmas, options)


def test_lcm_matches_the_webuis_algorithm(model):
    options = SamplerOptions()
    sigmas = sigma_plan("Automatic", SAMPLERS["LCM"], 6, model, options).sigmas
    x = start_latent(sigmas)
    queue, expected = deque(noises()), x
    for i in range(len(sigmas) - 1):
        expected = denoise(expected, sigmas[i])
        if sigmas[i + 1] > 0:
            expected = expected + sigmas[i + 1] * queue.popleft()
    got, calls = ours("LCM", x, sigmas, options)
    assert (got - expected).abs().max().item() < TOLERANCE
    assert calls == 6 == evaluations(SAMPLERS["LCM"], sigmas, options)


# --- names


@pytest.mark.parametrize(
    ("name", "scheduler", "expected"),
    [
        ("DPM++ 2M Karras", None, ("DPM++ 2M", "Karras")),
        ("DPM++ 2M SDE Heun Exponential", "Automatic", ("DPM++ 2M SDE Heun", "Exponential")),
        ("Euler a Exponential", "Karras", ("Euler a", "Karras")),
        ("k_euler_a", None, ("Euler a", "Automatic")),
        ("k_dpmpp_2m_ka", None, None),
        ("DPM++ 3M SDE", "sgm_uniform", ("DPM++ 3M SDE", "SGM Uniform")),
        ("ddim", "Automatic", ("DDIM", "Automatic")),
    ],
)
def test_resolve(name, scheduler, expected):
    if expected is None:
        with pytest.raises(UnsupportedFeature, match="Unknown sampler 'k_dpmpp_2m_ka'; valid samplers: DPM\\+\\+ 2M"):
            resolve(name, scheduler)
        return
    spec, label = resolve(name, scheduler)
    assert (spec.name, label) == expected


@pytest.mark.parametrize("name", [*REFUSED, "k_dpm_ad"])
def test_refused_samplers_say_why(name):
    with pytest.raises(UnsupportedFeature, match="is not supported: "):
        resolve(name, None)


def test_every_webui_sampler_is_implemented_or_refused():
    webui = [
        *("DPM++ 2M", "DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 2S a", "DPM++ 3M SDE", "Euler a"),
        *("Euler", "LMS", "Heun", "DPM2", "DPM2 a", "DPM fast", "DPM adaptive", "Restart", "DDIM", "DDIM CFG++"),
        *("PLMS", "UniPC", "LCM"),
    ]
    assert sorted([*SAMPLERS, *REFUSED]) == sorted(webui)
