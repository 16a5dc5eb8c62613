"""The WebUI 1.10's sigma lists: k-diffusion's own functions where the WebUI calls them, and the WebUI's
formulas and tables (sd_schedulers.py) written out here for the rest."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest
import torch
from scipy import stats

from openesd.errors import UnsupportedFeature
from openesd.generation.payload.settings import SamplerOptions
from openesd.generation.sampling.samplers import SAMPLERS, resolve
from openesd.generation.sampling.schedules import SCHEDULERS, ModelSigmas, schedule_params, sigma_plan, timesteps
from tests.support.kdiffusion import sampling

SD_CONFIG = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000}


class _LDM(torch.nn.Module):
    """What CompVisDenoiser reads from the WebUI's LDM model: a float32 alphas_cumprod."""

    def __init__(self) -> None:
        super().__init__()
        betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
        self.alphas_cumprod = torch.tensor(np.cumprod(1.0 - betas.numpy()), dtype=torch.float32)


@pytest.fixture(scope="module")
def model() -> ModelSigmas:
    return ModelSigmas.from_config(SD_CONFIG)


@pytest.fixture(scope="module")
def denoiser():
    sampling()
    return importlib.import_module("k_diffusion.external").CompVisDenoiser(_LDM())


def plan(label: str, sampler: str, steps: int, model: ModelSigmas, **options) -> tuple[list[float], dict]:
    result = sigma_plan(label, SAMPLERS[sampler], steps, model, SamplerOptions(**options))
    return result.sigmas, result.params


def test_model_sigmas_are_k_diffusions(model, denoiser):
    assert torch.equal(model.sigmas, denoiser.sigmas)
    assert model.sigma_min == denoiser.sigmas[0].item() and model.sigma_max == denoiser.sigmas[-1].item()
    probe = torch.tensor([0.03, 0.5, 1.0, 7.3, 14.0])
    assert torch.equal(model.sigma_to_t(probe), denoiser.sigma_to_t(probe))
    t = torch.tensor([0.0, 10.5, 500.25, 999.0])
    assert torch.equal(model.t_to_sigma(t), denoiser.t_to_sigma(t))


def test_zero_terminal_snr_ends_at_the_webuis_tiny_alpha_bar(model):
    rescaled = ModelSigmas.from_config(SD_CONFIG, zero_terminal_snr=True)
    assert rescaled.sigma_max == pytest.approx(math.sqrt((1 - 4.8973451890853435e-08) / 4.8973451890853435e-08))
    assert rescaled.sigma_min == pytest.approx(model.sigma_min, rel=1e-3)


@pytest.mark.parametrize("steps", [1, 7, 20])
def test_k_diffusion_schedules(model, denoiser, steps):
    lo, hi = model.sigma_min, model.sigma_max
    expected = {
        "Karras": sampling().get_sigmas_karras(steps, lo, hi),
        "Exponential": sampling().get_sigmas_exponential(steps, lo, hi),
        "Polyexponential": sampling().get_sigmas_polyexponential(steps, lo, hi),
        "Uniform": denoiser.get_sigmas(steps),
    }
    for label, sigmas in expected.items():
        assert plan(label, "Euler", steps, model)[0] == sigmas.tolist(), label
    assert plan("Automatic", "Euler", steps, model) == (denoiser.get_sigmas(steps).tolist(), {})


def test_automatic_is_each_samplers_default(model):
    karras = sampling().get_sigmas_karras(10, model.sigma_min, model.sigma_max).tolist()
    assert plan("Automatic", "DPM++ 2M", 10, model) == (karras, {"Schedule type": "Karras"})
    exponential = sampling().get_sigmas_exponential(11, model.sigma_min, model.sigma_max).tolist()
    assert plan("Automatic", "DPM++ 3M SDE", 10, model) == (exponential[:-2] + [0.0], {"Schedule type": "Exponential"})
    assert plan("Automatic", "LMS", 10, model)[1] == {}


def test_overrides_and_their_infotext(model):
    sigmas, params = plan("Karras", "Euler", 8, model, sigma_min=0.1, sigma_max=10.0, rho=5.0)
    assert sigmas == sampling().get_sigmas_karras(8, 0.1, 10.0, rho=5.0).tolist()
    assert params == {
        "Schedule type": "Karras",
        "Schedule min sigma": 0.1,
        "Schedule max sigma": 10.0,
        "Schedule rho": 5.0,
    }
    sigmas, params = plan("Exponential", "Euler", 8, model, rho=5.0, sigma_max=model.sigma_max)
    assert params == {"Schedule type": "Exponential"}  # rho only for Karras / Polyexponential; equal max is no override
    assert plan("Automatic", "Euler", 8, model, sigma_min=0.1)[1] == {}  # the default list takes no overrides


def test_discard_next_to_last_sigma_adds_a_step(model):
    full = sampling().get_sigmas_karras(11, model.sigma_min, model.sigma_max).tolist()
    assert plan("Automatic", "DPM2", 10, model)[0] == full[:-2] + [0.0]
    sigmas, params = plan("Karras", "Euler", 10, model, always_discard_next_to_last_sigma=True)
    assert sigmas == full[:-2] + [0.0] and params["Discard penultimate sigma"] is True
    assert (
        "Discard penultimate sigma"
        not in plan("Automatic", "DPM2", 10, model, always_discard_next_to_last_sigma=True)[1]
    )


def test_sgm_uniform_and_normal(model, denoiser):
    start, end = denoiser.sigma_to_t(torch.tensor(model.sigma_max)), denoiser.sigma_to_t(torch.tensor(model.sigma_min))
    sgm = [denoiser.t_to_sigma(t).item() for t in torch.linspace(start, end, 11)[:-1]] + [0.0]
    normal = [denoiser.t_to_sigma(t).item() for t in torch.linspace(start, end, 10)] + [0.0]
    assert plan("SGM Uniform", "Euler", 10, model)[0] == pytest.approx(sgm, rel=1e-6)
    assert plan("Normal", "Euler", 10, model)[0] == pytest.approx(normal, rel=1e-6)
    assert resolve("Euler", "SGMUniform")[1] == "SGM Uniform"


def test_simple_and_ddim(model, denoiser):
    table = denoiser.sigmas.tolist()
    assert plan("Simple", "Euler", 7, model)[0] == [table[-(1 + int(x * 1000 / 7))] for x in range(7)] + [0.0]
    ddim = plan("DDIM", "Euler", 30, model)[0]
    assert ddim == [table[x] for x in range(991, 0, -33)] + [0.0]  # 1000 // 30 = 33: 31 steps, as in the WebUI


def test_align_your_steps_tables(model):
    sd15 = [14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029]
    sdxl = [14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029]
    ays = SAMPLERS["Euler"]
    options = SamplerOptions()
    for table, is_sdxl in ((sd15, False), (sdxl, True)):
        exact = sigma_plan("Align Your Steps", ays, 11, model, options, is_sdxl=is_sdxl).sigmas
        assert exact == torch.tensor([*table, 0.0]).tolist()
        interpolated = np.exp(np.interp(np.linspace(0, 1, 20), np.linspace(0, 1, 11), np.log(table[::-1])))[::-1]
        got = sigma_plan("Align Your Steps", ays, 20, model, options, is_sdxl=is_sdxl).sigmas
        assert got == torch.tensor([*interpolated, 0.0], dtype=torch.float32).tolist()


def test_kl_optimal_ends_at_sigma_min(model):
    lo, hi = model.sigma_min, model.sigma_max
    expected = [math.tan(i / 10 * math.atan(lo) + (1 - i / 10) * math.atan(hi)) for i in range(11)]
    sigmas, params = plan("KL Optimal", "Euler", 10, model)
    assert sigmas == pytest.approx(expected, rel=1e-5) and len(sigmas) == 11 and sigmas[-1] > 0
    assert params == {"Schedule type": "KL Optimal"}


def test_beta(model):
    lo, hi = model.sigma_min, model.sigma_max
    expected = [lo + stats.beta.ppf(1 - x, 0.6, 0.6) * (hi - lo) for x in np.linspace(0, 1, 9)] + [0.0]
    sigmas, params = plan("Beta", "Euler", 9, model)
    assert sigmas == pytest.approx(expected, rel=1e-6)
    assert params == {"Schedule type": "Beta", "Beta schedule alpha": 0.6, "Beta schedule beta": 0.6}


def test_lcm_uses_every_twentieth_sigma(model):
    table = model.sigmas[19::20].log()
    t = (torch.linspace(999, 19, 4) - 19) / 20
    expected = ((1 - t.frac()) * table[t.floor().long()] + t.frac() * table[t.ceil().long()]).exp()
    assert plan("Automatic", "LCM", 4, model)[0] == [*expected.tolist(), 0.0]
    karras = sampling().get_sigmas_karras(4, model.sigmas[19].item(), model.sigma_max).tolist()
    assert plan("Karras", "LCM", 4, model)[0] == karras


@pytest.mark.parametrize(("steps", "count"), [(20, 20), (30, 31), (7, 8)])
def test_timestep_samplers_use_integer_timesteps(model, steps, count):
    ts = timesteps(steps)
    assert len(ts) == count and ts[0] == 1 and ts[-1] == min(1 + (count - 1) * (1000 // steps), 999)
    sigmas, params = plan("Karras", "DDIM", steps, model)  # the scheduler does not apply
    assert sigmas == [model.sigmas[t].item() for t in reversed(ts)] + [0.0] and params == {}


def test_every_webui_scheduler_is_listed():
    labels = [s.label for s in SCHEDULERS]
    assert labels == [
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
    ]
    with pytest.raises(UnsupportedFeature, match="Unknown scheduler 'Fancy'; valid schedulers: Automatic, Uniform"):
        resolve("Euler", "Fancy")


@pytest.mark.parametrize("sampler", ["Euler", "DPM++ 2M", "DPM2", "DDIM", "LCM", "DPM fast"])
@pytest.mark.parametrize("label", ["Automatic", "Karras", "Polyexponential", "Beta", "Uniform"])
def test_schedule_params_are_the_plans_infotext_without_the_model(model, sampler, label):
    options = SamplerOptions(sigma_min=0.05, sigma_max=12.0, rho=3.0, always_discard_next_to_last_sigma=True)
    spec = SAMPLERS[sampler]
    inner = model.lcm() if spec.lcm else model
    in_plan = sigma_plan(label, spec, 6, model, options).params
    assert schedule_params(label, spec, options, (inner.sigma_min, inner.sigma_max)) == in_plan
    assert list(schedule_params(label, spec, options)) == list(in_plan)  # no model: same entries, same order
    own = SamplerOptions(sigma_min=inner.sigma_min, sigma_max=inner.sigma_max)  # the model's own range
    assert "Schedule min sigma" not in sigma_plan(label, spec, 6, model, own).params
