"""ControlNet's tile_colorfix(+sharp): the x0 rewrite against a reference written here from the extension's
documented operation (edge-replicated box blur of radius Variation), and jobs with a tiny tile ControlNet."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from openesd.generation.adapters import _colorfix
from tests.support import tiny_adapters as ta
from tests.support.generation_jobs import b64png, run, txt2img_payload

torch = pytest.importorskip("torch")


def box_blur(x: np.ndarray, k: int) -> np.ndarray:
    """Each pixel the mean of the (2k+1)^2 window around it, edges repeated (numpy, written here)."""
    padded = np.pad(x, ((0, 0), (0, 0), (k, k), (k, k)), mode="edge")
    out = np.zeros_like(x)
    for dy in range(2 * k + 1):
        for dx in range(2 * k + 1):
            out += padded[:, :, dy : dy + x.shape[2], dx : dx + x.shape[3]]
    return out / (2 * k + 1) ** 2


def latents(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(a smooth colour field, fine detail) of shape (1, 4, 32, 32)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32] / 32.0
    smooth = np.stack([np.sin(3 * xx + c) * np.cos(2 * yy - c) * (c + 1) for c in range(4)])[None]
    return smooth.astype(np.float32), rng.normal(0, 0.5, (1, 4, 32, 32)).astype(np.float32)


def test_fixed_x0_takes_the_references_low_frequencies_and_keeps_its_own_detail():
    k = 4
    colours, detail = latents(0)
    x0 = colours + detail
    reference = -2.0 * latents(1)[0] + 0.7  # other colours
    got = _colorfix.fixed_x0(torch.from_numpy(x0), torch.from_numpy(reference), k).numpy()
    want = x0 - box_blur(x0, k) + box_blur(reference, k)
    assert np.abs(got - want).max() < 1e-5
    low_before = np.abs(box_blur(x0, k) - box_blur(reference, k)).mean()
    low_after = np.abs(box_blur(got, k) - box_blur(reference, k)).mean()
    assert low_after < 0.2 * low_before  # the colour now follows the reference
    # The detail, as a 3x3 high pass: the fix adds only a field smooth at the Variation's scale.
    changed = np.abs((got - box_blur(got, 1)) - (x0 - box_blur(x0, 1))).mean()
    assert changed < 0.1 * np.abs(x0 - box_blur(x0, 1)).mean()


def fake_run(sigma: float, kind: str = "epsilon") -> SimpleNamespace:
    scheduler = SimpleNamespace(sigma=sigma, plan=SimpleNamespace(prediction_type=kind))
    return SimpleNamespace(scheduler=scheduler, pipe=None)


@pytest.mark.parametrize("kind", ["epsilon", "v_prediction"])
def test_correct_rewrites_x0_by_weight_and_sharp_softens_only_the_negative_rows(kind):
    """Rows [prompt, negative]; the output's x0 moved `weight` of the way to the fixed x0, and for +sharp the
    negative row's target is softened by Sharpness % toward its blur, as the extension's hook."""
    k, sigma, weight, sharpness = 3, 2.5, 0.6, 40.0
    colours, detail = latents(2)
    reference = torch.from_numpy(latents(3)[0])
    x = torch.from_numpy(np.concatenate([colours + detail, colours - detail]))  # the sampler's point
    x_in = x / (sigma**2 + 1) ** 0.5
    output = torch.from_numpy(np.random.default_rng(4).normal(0, 1, x.shape).astype(np.float32))

    def x0_of(out):
        if kind == "epsilon":
            return x - sigma * out
        return x / (sigma**2 + 1) - out * sigma / (sigma**2 + 1) ** 0.5

    fix = _colorfix.ColorFix(Image.new("RGB", (256, 256)), k, sharpness, weight)
    fix.attach(fake_run(sigma, kind))
    fix.latent = reference
    corrected = fix.correct(x_in, output, [1, 0], 1)
    before = x0_of(output).numpy()
    target = before - box_blur(before, k) + box_blur(reference.numpy(), k)
    d = sharpness * 0.01
    target[1] = d * box_blur(target[1:], k)[0] + (1 - d) * target[1]
    want = before + weight * (target - before)
    assert np.abs(x0_of(corrected).numpy() - want).max() < 1e-4
    assert float((corrected - output).abs().max()) > 0.05
    zero = _colorfix.ColorFix(Image.new("RGB", (256, 256)), k, sharpness, 0.0)
    zero.attach(fake_run(sigma, kind))
    assert torch.equal(zero.correct(x_in, output, [1, 0], 1), output)


def photo() -> Image.Image:
    """Strong colours in four quadrants with fine noise on top."""
    rng = np.random.default_rng(5)
    image = np.zeros((64, 64, 3), dtype=np.int16)
    image[:32, :32], image[:32, 32:] = (220, 30, 30), (30, 200, 40)
    image[32:, :32], image[32:, 32:] = (20, 40, 230), (230, 220, 40)
    image += rng.integers(-20, 20, (64, 64, 3))
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))


def scripts(module: str, **extra) -> dict:
    unit = {
        "enabled": True,
        "module": module,
        "model": "control_v11f1e_sd15_tile [a371b31b]",
        "weight": 1.0,
        "image": b64png(photo()),
        "resize_mode": "Just Resize",
        **extra,
    }
    return {"alwayson_scripts": {"controlnet": {"args": [unit]}}}


@pytest.fixture(scope="module")
def models(sd15_checkpoint, tmp_path_factory):
    net = ta.write_tiny_controlnet(tmp_path_factory.mktemp("tile") / "control_v11f1e_sd15_tile.safetensors")
    return {"Stable-diffusion": [sd15_checkpoint], "ControlNet": [net]}


def test_colorfix_jobs_follow_the_images_colours_and_weight_zero_is_exact(generator, models):
    """Measured on the final latent: with the colour fix its blur is the image latent's blur; tile_resample
    (the same ControlNet without the fix) is far from it; weight 0 is the job without the unit, bit for bit."""
    from openesd.generation.tasks.vae import encode_mean

    pipe = generator._load(models["Stable-diffusion"][0]).pipe
    origin = encode_mean(pipe, [photo()]).float() / pipe.vae.config.scaling_factor
    decoded: list = []
    handle = pipe.vae.post_quant_conv.register_forward_pre_hook(lambda module, args: decoded.append(args[0].clone()))
    jobs = [
        {},
        scripts("tile_resample"),
        scripts("tile_colorfix", threshold_a=4),
        scripts("tile_colorfix+sharp", threshold_a=4, threshold_b=2.0),
        scripts("tile_colorfix", weight=0),
    ]
    try:
        images = [run(generator, "txt2img", txt2img_payload(**job), models).images[0] for job in jobs]
    finally:
        handle.remove()
    plain, resample, colorfix, sharp, zero = (latent.float() for latent in decoded)

    def low_distance(latent):
        return float((_colorfix.blur(latent, 4) - _colorfix.blur(origin, 4)).abs().mean())

    # Measured 0.29 (the rest is the blur of a blur); the tiny random UNet's latents are in the hundreds.
    assert low_distance(colorfix) < 0.4 * low_distance(resample)
    assert low_distance(sharp) < 0.4 * low_distance(resample)
    assert float((sharp - colorfix).abs().max()) > 1e-4  # the negative rows' softening shows through CFG
    assert images[4] == images[0] and float((zero - plain).abs().max()) == 0.0


@pytest.mark.slow
def test_colorfix_runs_in_the_hires_pass_at_its_size(generator, models):
    """The hires pass encodes the image at its own size (a 1.5x latent) and applies the fix there too."""
    payload = txt2img_payload(enable_hr=True, hr_scale=1.5, hr_upscaler="Latent", denoising_strength=0.5)
    plain = run(generator, "txt2img", payload, models).images[0]
    fixed = run(generator, "txt2img", {**payload, **scripts("tile_colorfix", threshold_a=3)}, models).images[0]
    assert fixed != plain
