"""Each sampler coroutine against k-diffusion's own function (or, for the WebUI's own samplers, the WebUI's
algorithm written out here or in tests/support/webui_extra.py) on an analytic denoiser, same sigmas, same noise."""

from __future__ import annotations

import inspect
import math
from collections import deque

import numpy as np
import pytest
import torch

from openesd.errors import UnsupportedFeature
from openesd.generation.payload.settings import SamplerOptions
from openesd.generation.sampling.samplers import (
    REFUSED,
    SAMPLERS,
    evaluations,
    resolve,
    sampler_params,
    start,
    starting_latent,
)
from openesd.generation.sampling.schedules import SCHEDULERS, ModelSigmas, sigma_plan, timesteps
from tests.support import webui_extra
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


def ours(
    name: str, x: torch.Tensor, sigmas: list[float], options: SamplerOptions, extra=None, calls: list | None = None
) -> tuple[torch.Tensor, int]:
    queue = deque(noises())

    def noise(sigma, sigma_next):
        if calls is not None:
            calls.append((sigma, sigma_next))
        return queue.popleft()

    return drive(start(SAMPLERS[name], x, sigmas, noise, options, extra))


class _TorchHijack:
    """The WebUI's TorchHijack: k-diffusion's torch.randn_like hands out the pre-drawn noise in order."""

    def __init__(self, queue: deque):
        self.queue = queue

    def randn_like(self, x):
        return self.queue.popleft()

    def __getattr__(self, item):
        return getattr(torch, item)


def theirs(monkeypatch, function, x, sigmas: list[float], calls: list | None = None, **kwargs):
    ks = sampling()
    queue = deque(noises())
    monkeypatch.setattr(ks, "torch", _TorchHijack(queue))
    fn = getattr(ks, function) if isinstance(function, str) else function

    def noise_sampler(sigma, sigma_next):
        if calls is not None:
            calls.append((float(sigma), float(sigma_next)))
        return queue.popleft()

    if "noise_sampler" in inspect.signature(fn).parameters:
        kwargs["noise_sampler"] = noise_sampler
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
    their_noise, our_noise = [], []
    kwargs = webui_kwargs(name, options)
    expected, expected_calls = theirs(monkeypatch, K_FUNCTIONS[name], x, sigmas, their_noise, **kwargs)
    got, calls = ours(name, x, sigmas, options, calls=our_noise)
    assert (got - expected).abs().max().item() < TOLERANCE
    assert calls == expected_calls == evaluations(SAMPLERS[name], sigmas, options)
    if SAMPLERS[name].brownian_noise:  # the Brownian tree is queried at exactly k-diffusion's float32 times
        assert our_noise == their_noise


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


@pytest.mark.parametrize(("eta", "steps"), [(1.0, 10), (0.0, 9), (0.5, 2), (1.0, 1)])
def test_dpm_fast_matches(monkeypatch, model, eta, steps):
    options = SamplerOptions(eta=eta)
    plan = sigma_plan("Karras", SAMPLERS["DPM fast"], steps, model, options)  # txt2img ignores the schedule
    x = start_latent([model.sigma_max])
    kwargs = {"eta": eta, "s_noise": 1.0}
    expected, expected_calls = _dpm_fast(monkeypatch, x, model, steps, kwargs)
    got, calls = ours("DPM fast", x, plan.sigmas, options, plan.extra)
    assert (got - expected).abs().max().item() < TOLERANCE
    assert calls == expected_calls == steps == evaluations(SAMPLERS["DPM fast"], plan.sigmas, options, plan.extra)
    assert plan.params == {"Schedule type": "Karras"}


@pytest.mark.parametrize(("steps", "discard"), [(4, False), (7, False), (5, True)])
def test_dpm_fast_txt2img_starts_at_the_schedules_first_sigma(model, steps, discard):
    """KDiffusionSampler.sample: x = noise * the scheduler's sigmas[0] (DDIM: sigma(751) at 4 steps, not the
    model's sigma_max that DPM fast starts from), n = steps as asked, however long the list (DDIM: 8 sigmas at
    7 steps) and before the discarded sigma."""
    options = SamplerOptions(always_discard_next_to_last_sigma=discard)
    scheduled = sigma_plan("DDIM", SAMPLERS["Euler"], steps, model, options).sigmas
    plan = sigma_plan("DDIM", SAMPLERS["DPM fast"], steps, model, options)
    noise = start_latent([1.0])
    assert torch.equal(starting_latent(SAMPLERS["DPM fast"], plan, noise, options), noise * scheduled[0])
    assert scheduled[0] < model.sigma_max
    assert evaluations(SAMPLERS["DPM fast"], plan.sigmas, options, plan.extra) == steps
    assert plan.extra == {"sigma_min": model.sigma_min, "sigma_max": model.sigma_max}
    assert plan.params["Schedule type"] == "DDIM"


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


@pytest.mark.parametrize("steps", [8, 24, 40])
def test_restart_matches_the_webuis_algorithm(monkeypatch, model, steps):
    options = SamplerOptions()
    sigmas = sigma_plan("Automatic", SAMPLERS["Restart"], steps, model, options).sigmas
    x = start_latent(sigmas)
    expected, expected_calls = theirs(monkeypatch, webui_extra.restart_sampler, x, sigmas)
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


def _unipc_reference(model: ModelSigmas, variant: str) -> webui_extra.UniPC:
    """The WebUI's UniPC on `denoise`, seen as an eps model at the fractional timesteps it asks for."""

    def eps(x_vp: torch.Tensor, t_input: float) -> torch.Tensor:
        sigma = model.t_to_sigma(torch.tensor(min(max(t_input, 0.0), 999.0))).item()
        x = x_vp * math.sqrt(1 + sigma**2)
        return (x - denoise(x, sigma)) / sigma

    return webui_extra.UniPC(_alphas_cumprod(), eps, variant)


@pytest.mark.parametrize(
    ("variant", "skip_type", "order", "lower_order_final", "steps"),
    [
        ("bh1", "time_uniform", 3, True, 10),
        ("bh2", "time_uniform", 2, True, 8),
        ("bh1", "time_quadratic", 3, False, 12),
        ("bh2", "logSNR", 3, True, 10),
        ("vary_coeff", "time_uniform", 3, True, 10),
        ("vary_coeff", "logSNR", 1, True, 6),
        ("bh1", "time_uniform", 3, True, 30),
    ],
)
def test_unipc_matches_the_webuis_algorithm(model, variant, skip_type, order, lower_order_final, steps):
    options = SamplerOptions(
        uni_pc_variant=variant,
        uni_pc_skip_type=skip_type,
        uni_pc_order=order,
        uni_pc_lower_order_final=lower_order_final,
    )
    plan = sigma_plan("Automatic", SAMPLERS["UniPC"], steps, model, options)
    noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(5))
    reference = _unipc_reference(model, variant)
    expected = reference.sample(noise, len(timesteps(steps)), order, skip_type, lower_order_final)
    got, calls = ours("UniPC", noise * math.sqrt(1 + plan.sigmas[0] ** 2), plan.sigmas, options, plan.extra)
    assert (got - expected).abs().max().item() < TOLERANCE
    count = evaluations(SAMPLERS["UniPC"], plan.sigmas, options, plan.extra)
    assert calls == reference.calls == len(timesteps(steps)) == count


# --- img2img: the part of the schedule the WebUI samples, and the noised init latent


@pytest.mark.parametrize(("name", "steps", "t_enc"), [("DPM++ 2M", 20, 15), ("DPM2", 10, 5), ("DPM fast", 12, 6)])
def test_img2img_takes_the_last_t_enc_plus_one_steps(model, name, steps, t_enc):
    options = SamplerOptions()
    full = sigma_plan("Automatic", SAMPLERS[name], steps, model, options)
    if name == "DPM fast":  # its txt2img range is the model's; img2img slices the schedule itself
        full = sigma_plan("Automatic", SAMPLERS["Euler"], steps, model, options)
    plan = sigma_plan("Automatic", SAMPLERS[name], steps, model, options, t_enc=t_enc)
    assert plan.extra == {}
    assert plan.sigmas == full.sigmas[steps - t_enc - 1 :] and len(plan.sigmas) == t_enc + 2
    init, noise = start_latent([1.0]), start_latent([1.0]) * 0.5
    assert torch.equal(starting_latent(SAMPLERS[name], plan, noise, options, init), init + noise * plan.sigmas[0])
    sgm = SamplerOptions(sgm_noise_multiplier=True)  # txt2img only in the WebUI
    assert torch.equal(starting_latent(SAMPLERS[name], plan, noise, sgm, init), init + noise * plan.sigmas[0])


def test_starting_latents_of_txt2img(model):
    noise = start_latent([1.0])
    plan = sigma_plan("Automatic", SAMPLERS["Euler"], 10, model, SamplerOptions())
    assert torch.equal(starting_latent(SAMPLERS["Euler"], plan, noise, SamplerOptions()), noise * plan.sigmas[0])
    sgm = starting_latent(SAMPLERS["Euler"], plan, noise, SamplerOptions(sgm_noise_multiplier=True))
    assert torch.allclose(sgm, noise * math.sqrt(1 + plan.sigmas[0] ** 2))
    ddim = sigma_plan("Automatic", SAMPLERS["DDIM"], 10, model, SamplerOptions())
    scaled = starting_latent(SAMPLERS["DDIM"], ddim, noise, SamplerOptions())
    assert torch.allclose(scaled, noise * math.sqrt(1 + ddim.sigmas[0] ** 2))


@pytest.mark.parametrize(("name", "steps", "t_enc"), [("DDIM", 20, 12), ("PLMS", 10, 6), ("DDIM", 30, 21)])
def test_img2img_timestep_samplers_match_the_webui(model, name, steps, t_enc):
    options = SamplerOptions(eta_ddim=0.3)
    plan = sigma_plan("Automatic", SAMPLERS[name], steps, model, options, t_enc=t_enc)
    init, noise = start_latent([1.0]), start_latent([1.0]) * 0.5
    ts, a = timesteps(steps), _alphas_cumprod()[timesteps(steps)[t_enc]].item()
    xi = init * math.sqrt(a) + noise * math.sqrt(1 - a)  # CompVisSampler.sample_img2img
    if name == "DDIM":
        expected, expected_calls = _ddim_reference(xi, ts[:t_enc], 0.3, deque(noises()))
    else:
        expected, expected_calls = _plms_reference(xi, ts[:t_enc])
    got, calls = ours(name, starting_latent(SAMPLERS[name], plan, noise, options, init), plan.sigmas, options)
    assert (got - expected).abs().max().item() < TOLERANCE
    assert calls == expected_calls == evaluations(SAMPLERS[name], plan.sigmas, options)


@pytest.mark.parametrize("skip_type", ["time_uniform", "logSNR"])
def test_img2img_unipc_matches_the_webui(model, skip_type):
    options = SamplerOptions(uni_pc_skip_type=skip_type)
    steps, t_enc = 20, 12
    plan = sigma_plan("Automatic", SAMPLERS["UniPC"], steps, model, options, t_enc=t_enc)
    init, noise = start_latent([1.0]), start_latent([1.0]) * 0.5
    ts = timesteps(steps)
    a = _alphas_cumprod()[ts[t_enc]].item()
    xi = init * math.sqrt(a) + noise * math.sqrt(1 - a)
    reference = _unipc_reference(model, "bh1")
    expected = reference.sample(xi, t_enc, 3, skip_type, True, t_start=ts[t_enc - 1] / 1000 + 1 / 1000)
    x = starting_latent(SAMPLERS["UniPC"], plan, noise, options, init)
    got, calls = ours("UniPC", x, plan.sigmas, options, plan.extra)
    assert (got - expected).abs().max().item() < TOLERANCE
    assert calls == reference.calls == t_enc


# --- infotext and options


def test_sampler_infotext_entries():
    assert sampler_params(SAMPLERS["Euler a"], SamplerOptions()) == {}
    assert sampler_params(SAMPLERS["Euler a"], SamplerOptions(eta_ancestral=0.6)) == {"Eta": 0.6}
    assert sampler_params(SAMPLERS["DDIM"], SamplerOptions(eta=0.4, eta_ddim=0.1)) == {"Eta DDIM": 0.4}
    assert sampler_params(SAMPLERS["DDIM"], SamplerOptions(eta_ancestral=0.6)) == {}
    churned = sampler_params(SAMPLERS["Euler"], SamplerOptions(s_churn=0.5, s_tmax=0.0, sgm_noise_multiplier=True))
    assert churned == {"Sigma churn": 0.5, "SGM noise multiplier": True}  # s_tmax 0 is infinity
    assert list(churned) == ["SGM noise multiplier", "Sigma churn"]  # sample() writes it before initialize()
    assert sampler_params(SAMPLERS["Euler"], SamplerOptions(sgm_noise_multiplier=True), img2img=True) == {}
    assert sampler_params(SAMPLERS["Euler a"], SamplerOptions(s_churn=0.5, s_noise=0.9)) == {}  # takes neither


def test_unipc_needs_as_many_steps_as_its_order(model):
    options = SamplerOptions(uni_pc_order=3)
    plan = sigma_plan("Automatic", SAMPLERS["UniPC"], 2, model, options)
    with pytest.raises(UnsupportedFeature, match="UniPC order 3 needs at least 3 steps, got 2"):
        evaluations(SAMPLERS["UniPC"], plan.sigmas, options, plan.extra)
