"""FLUX.1 (dev, schnell) and SD 3.5 jobs through the Generator, from the WebUI payloads an ESD client sends.

The pipelines are tiny_flow's, handed to the generator as the LoadedModel its loader makes (the files and
their loading are tests/generation/test_flow_loading's). Fidelity is measured against the plain diffusers
pipelines given the same sigmas and the same noise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from openesd.generation import GenerationError
from tests.support.generation_jobs import b64png, info, png, run, txt2img_payload


def _put(generator, path: Path, family: str, pipe) -> Path:
    from openesd.generation.models.loading import LoadedModel

    path.write_bytes(path.name.encode())  # a distinct file: the infotext's model hash reads it
    own = {name: part for name, part in pipe.components.items() if name.startswith("text_encoder") or name == "vae"}
    loaded = LoadedModel(pipe=pipe, family=family, inpainting=False, path=path, own_parts=own)
    generator.cache.get("checkpoint", path, lambda: loaded)
    return path


@pytest.fixture(scope="session")
def flow_pipes():
    from diffusers import FluxPipeline, StableDiffusion3Pipeline

    from tests.support import tiny_flow as tf

    return {
        "flux-dev": FluxPipeline(**tf.tiny_flux_components()),
        "flux-schnell": FluxPipeline(**tf.tiny_flux_components(guidance=False)),
        "sd3": StableDiffusion3Pipeline(**tf.tiny_sd3_components()),
    }


@pytest.fixture(scope="session")
def flow_models(generator, flow_pipes, tiny_dir) -> dict[str, dict[str, list[Path]]]:
    families = {"flux-dev": "flux", "flux-schnell": "flux", "sd3": "sd3"}
    return {
        name: {"Stable-diffusion": [_put(generator, tiny_dir / f"tiny-{name}.safetensors", families[name], pipe)]}
        for name, pipe in flow_pipes.items()
    }


def _payload(**overrides) -> dict:
    base = {"steps": 3, "scheduler": "Simple", "cfg_scale": 1, "negative_prompt": ""}
    return txt2img_payload(**{**base, **overrides})


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(png(data).convert("RGB"), dtype=np.int16)


def _reference(pipe, family: str, payload: dict, seed: int) -> np.ndarray:
    """The plain diffusers pipeline with the job's sigmas and the job's (WebUI) noise, 8 bits as the job's."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler

    from openesd.generation.sampling import flow
    from openesd.generation.sampling.driver import webui_uint8
    from openesd.generation.sampling.noise import ImageRNG

    factor = pipe.vae_scale_factor
    h, w = payload["height"] // factor, payload["width"] // factor
    shift = flow.model_shift(pipe.scheduler.config, (h // 2) * (w // 2))
    sigmas = flow.schedule(payload["scheduler"], payload["steps"], shift, family)
    noise = ImageRNG((16, h, w), [seed], source="NV").first().float()
    own = pipe.scheduler
    pipe.scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0)  # the sigmas are shifted already
    try:
        common = dict(
            prompt=payload["prompt"],
            height=payload["height"],
            width=payload["width"],
            num_inference_steps=payload["steps"],
            sigmas=sigmas[:-1],
            generator=torch.Generator().manual_seed(0),
            output_type="np",
        )
        if family == "flux":
            latents = type(pipe)._pack_latents(noise, 1, 16, h, w)
            out = pipe(**common, latents=latents, guidance_scale=3.5, max_sequence_length=512)
        else:
            negative = payload["negative_prompt"]
            out = pipe(**common, latents=noise, negative_prompt=negative, guidance_scale=payload["cfg_scale"])
    finally:
        pipe.scheduler = own
    return webui_uint8(out.images)[0].astype(np.int16)


@pytest.mark.parametrize(("name", "family", "cfg"), [("flux-dev", "flux", 1), ("sd3", "sd3", 5)])
def test_txt2img_equals_the_plain_diffusers_pipeline(generator, flow_pipes, flow_models, name, family, cfg):
    payload = _payload(seed=7, cfg_scale=cfg, negative_prompt="blurry")
    result = run(generator, "txt2img", payload, flow_models[name])
    image = _pixels(result.images[0])
    assert image.shape == (64, 64, 3)
    reference = _reference(flow_pipes[name], family, payload, seed=7)
    assert np.abs(image - reference).max() <= 1
    text = png(result.images[0]).text["parameters"]
    assert "Sampler: Euler, Schedule type: Simple" in text and "Seed: 7" in text


def test_seeds_batches_and_variation_seeds(generator, flow_models):
    models = flow_models["flux-schnell"]
    batch = run(generator, "txt2img", _payload(seed=11, batch_size=2), models)
    second = run(generator, "txt2img", _payload(seed=12), models)
    # A batch's second image is the image of its own seed (seed + 1) alone, and differs from the first.
    assert np.abs(_pixels(batch.images[1]) - _pixels(second.images[0])).max() <= 1
    assert np.abs(_pixels(batch.images[0]) - _pixels(batch.images[1])).max() > 10
    assert info(batch)["all_seeds"] == [11, 12]
    varied = run(generator, "txt2img", _payload(seed=11, subseed=99, subseed_strength=0.5), models)
    assert np.abs(_pixels(varied.images[0]) - _pixels(batch.images[0])).max() > 10
    assert "Variation seed: 99, Variation seed strength: 0.5" in png(varied.images[0]).text["parameters"]
    again = run(generator, "txt2img", _payload(seed=11, subseed=99, subseed_strength=0.5), models)
    assert again.images == varied.images


def test_distilled_cfg_scale_guides_dev_and_is_refused_for_schnell_and_sd3(generator, flow_models):
    plain = run(generator, "txt2img", _payload(seed=3), flow_models["flux-dev"])
    guided = run(generator, "txt2img", _payload(seed=3, distilled_cfg_scale=9.0), flow_models["flux-dev"])
    assert np.abs(_pixels(plain.images[0]) - _pixels(guided.images[0])).max() > 3
    assert "Distilled CFG Scale: 3.5" in png(plain.images[0]).text["parameters"]
    assert "Distilled CFG Scale: 9.0" in png(guided.images[0]).text["parameters"]
    # Forge's API default (3.5) is what every client sends: accepted where it has no effect, and not written.
    schnell = run(generator, "txt2img", _payload(seed=3, distilled_cfg_scale=3.5), flow_models["flux-schnell"])
    assert "Distilled CFG" not in png(schnell.images[0]).text["parameters"]
    for name in ("flux-schnell", "sd3"):
        with pytest.raises(GenerationError, match="distilled_cfg_scale 9.0 has no effect on (FLUX.1-schnell|SD 3.5)"):
            run(generator, "txt2img", _payload(distilled_cfg_scale=9.0), flow_models[name])


def test_true_cfg_and_shift_change_the_image(generator, flow_models):
    models = flow_models["flux-dev"]
    plain = _pixels(run(generator, "txt2img", _payload(seed=5, negative_prompt="dog"), models).images[0])
    steps = []
    cfg = run(
        generator,
        "txt2img",
        _payload(seed=5, negative_prompt="dog", cfg_scale=4),
        models,
        lambda s, t: steps.append((s, t)),
    )
    assert np.abs(_pixels(cfg.images[0]) - plain).max() > 3
    assert steps[-1] == (6, 6)  # FLUX's true CFG: two transformer calls a step
    skip = {"CLIP_stop_at_last_layers": 2}  # nothing FLUX uses: reported as unused
    shifted = run(
        generator, "txt2img", _payload(seed=5, negative_prompt="dog", shift=6.0, override_settings=skip), models
    )
    assert np.abs(_pixels(shifted.images[0]) - plain).max() > 3
    assert "Shift: 6.0" in png(shifted.images[0]).text["parameters"]
    assert "CLIP_stop_at_last_layers" in info(shifted)["ignored_settings"]


def test_beta_normal_and_clip_skip_change_an_sd3_image(generator, flow_models):
    simple = _pixels(run(generator, "txt2img", _payload(seed=2), flow_models["sd3"]).images[0])
    for scheduler in ("Beta", "Normal"):
        other = run(generator, "txt2img", _payload(seed=2, scheduler=scheduler), flow_models["sd3"])
        assert np.abs(_pixels(other.images[0]) - simple).max() > 1
        assert f"Schedule type: {scheduler}" in png(other.images[0]).text["parameters"]
    skip = run(
        generator, "txt2img", _payload(seed=2, override_settings={"CLIP_stop_at_last_layers": 2}), flow_models["sd3"]
    )
    assert np.abs(_pixels(skip.images[0]) - simple).max() > 1
    assert "Clip skip: 2" in png(skip.images[0]).text["parameters"]


def test_hires_fix_upscales_and_runs_a_second_pass(generator, flow_models):
    hires = {"enable_hr": True, "hr_scale": 2, "hr_upscaler": "Latent", "hr_second_pass_steps": 2}
    steps: list = []
    payload = _payload(seed=8, denoising_strength=0.5, **hires)
    result = run(generator, "txt2img", payload, flow_models["flux-dev"], lambda s, t: steps.append((s, t)))
    image = png(result.images[0])
    assert image.size == (128, 128)
    # 3 first-pass steps, then int(0.5 * 2) + 1 hires steps.
    assert steps[-1] == (5, 5)
    text = image.text["parameters"]
    assert "Denoising strength: 0.5" in text and "Hires upscale: 2" in text and "Hires upscaler: Latent" in text


def test_prompt_weights_reach_t5(generator, flow_pipes, flow_models):
    from openesd.generation.sampling.flow_models import encode

    models = flow_models["flux-schnell"]
    plain = run(generator, "txt2img", _payload(seed=6, prompt="a red house"), models)
    # The weight syntax is parsed, not read as text: weight 1 is the plain prompt.
    unit = run(generator, "txt2img", _payload(seed=6, prompt="a (red:1.0) house"), models)
    assert np.array_equal(_pixels(unit.images[0]), _pixels(plain.images[0]))
    weighted = run(generator, "txt2img", _payload(seed=6, prompt="(a red house:3)"), models)
    assert np.abs(_pixels(weighted.images[0]) - _pixels(plain.images[0])).max() > 0  # tiny models: text moves little
    # T5's states of the weighted tokens scale by their weight (then all by one factor, the "Original" mean).
    pipe = flow_pipes["flux-schnell"]
    states = {w: encode("flux", pipe, f"a (red:{w}) house", "", False, emphasis="No norm").embeds for w in (2.0, 3.0)}
    red = pipe.tokenizer_2("a ", add_special_tokens=False).input_ids
    position = len(red)
    assert np.allclose(states[3.0][0, position].numpy(), 1.5 * states[2.0][0, position].numpy(), atol=1e-5)
    assert np.allclose(states[3.0][0, 0].numpy(), states[2.0][0, 0].numpy(), atol=1e-5)  # "a" keeps weight 1


def _init_image():
    from PIL import Image

    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))


@pytest.mark.parametrize("name", ["flux-dev", "sd3"])
def test_img2img_denoising_strength_sets_the_steps(generator, flow_models, name):
    def img2img(strength: float, **extra) -> tuple[np.ndarray, list]:
        steps: list = []
        payload = _payload(seed=4, init_images=[b64png(_init_image())], denoising_strength=strength, **extra)
        result = run(generator, "img2img", payload, flow_models[name], lambda s, t: steps.append(t))
        assert f"Denoising strength: {strength}" in png(result.images[0]).text["parameters"]
        return _pixels(result.images[0]), steps

    weak, weak_steps = img2img(0.4)
    strong, strong_steps = img2img(0.9)
    # The WebUI's img2img steps: int(strength * steps) + 1 of the 3-step schedule.
    assert weak_steps[-1] == 2 and strong_steps[-1] == 3
    assert np.abs(weak - strong).max() > 3
    if name == "flux-dev":
        unchanged, _ = img2img(0.0)
        assert np.array_equal(unchanged, np.asarray(_init_image(), dtype=np.int16))


def test_inpaint_keeps_the_unmasked_pixels(generator, flow_models):
    from PIL import Image

    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    init = b64png(_init_image())
    payload = _payload(seed=4, init_images=[init], denoising_strength=0.8, mask=b64png(mask), mask_blur=0)
    image = _pixels(run(generator, "img2img", payload, flow_models["flux-dev"]).images[0])
    original = np.asarray(_init_image(), dtype=np.int16)
    outside = np.asarray(mask) == 0
    assert np.array_equal(image[outside], original[outside])
    assert np.abs(image[24:40, 24:40] - original[24:40, 24:40]).max() > 10


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"sampler_name": "DPM++ 2M"}, "sampler 'DPM\\+\\+ 2M' is not available for FLUX.1 / SD 3.5; valid: Euler"),
        ({"scheduler": "Karras"}, "scheduler 'Karras' is not available .*valid: Automatic, Simple, Normal, Beta"),
        ({"tiling": True}, "seamless tiling \\(tiling\\) is not supported with FLUX.1-dev"),
        (
            {"alwayson_scripts": {"controlnet": {"args": [{"enabled": True, "module": "none", "model": "x"}]}}},
            "ControlNet units is not supported with FLUX.1-dev",
        ),
    ],
)
def test_what_flux_cannot_do_fails_naming_it(generator, flow_models, overrides, message):
    with pytest.raises(GenerationError, match=message):
        run(generator, "txt2img", _payload(**overrides), flow_models["flux-dev"])


# ---- the sigma schedules against independent references ----------------------------------------------


def test_simple_is_diffusers_flux_schedule_and_normal_its_sd3_schedule():
    from diffusers import FlowMatchEulerDiscreteScheduler

    from openesd.generation.sampling import flow
    from tests.support.tiny_flow import _flow_scheduler

    config = _flow_scheduler("flux").config
    for tokens, steps in ((4096, 20), (1024, 25), (256, 8)):
        shift = flow.model_shift(config, tokens)
        reference = FlowMatchEulerDiscreteScheduler.from_config(config)
        mu = np.log(shift)
        reference.set_timesteps(sigmas=np.linspace(1.0, 1 / steps, steps), mu=mu)
        ours = flow.schedule("Simple", steps, shift, "flux")
        assert np.allclose(ours, reference.sigmas.numpy(), atol=1e-5)
    # SD 3.5's pipeline default spaces t from 1 to its (shifted) sigma_min, then shifts: Forge's "Normal".
    reference = FlowMatchEulerDiscreteScheduler(shift=3.0)
    reference.set_timesteps(num_inference_steps=28)
    assert np.allclose(flow.schedule("Normal", 28, 3.0, "sd3"), reference.sigmas.numpy(), atol=1e-5)


def test_beta_and_normal_schedules_against_scipy_and_numpy():
    from scipy import stats

    from openesd.generation.sampling import flow

    shift, steps = 3.0, 10
    sigma_min = shift * 0.001 / (1 + (shift - 1) * 0.001)
    quantiles = stats.beta.ppf(1 - np.linspace(0, 1, steps), 0.6, 0.6)
    expected_beta = np.append(sigma_min + quantiles * (1 - sigma_min), 0.0)
    assert np.allclose(flow.schedule("Beta", steps, shift, "sd3"), expected_beta, atol=1e-6)
    # Forge's (and ComfyUI's) "Normal" on a flow model: t = sigma, so the linspace between the ends is shifted.
    t = np.linspace(1.0, sigma_min, steps)
    expected_normal = np.append(shift * t / (1 + (shift - 1) * t), 0.0)
    assert np.allclose(flow.schedule("Normal", steps, shift, "sd3"), expected_normal, atol=1e-6)
