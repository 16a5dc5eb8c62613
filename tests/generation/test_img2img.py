"""img2img and inpainting through the Generator on tiny checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from openesd.generation import GenerationError
from openesd.generation.tasks.img2img import resize_image
from tests.support.generation_jobs import b64png, info, png, run, txt2img_payload


def init_image(width: int = 64, height: int = 64) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def square_mask(size: int = 64, box: tuple[int, int, int, int] = (16, 16, 48, 48)) -> Image.Image:
    mask = Image.new("L", (size, size), 0)
    mask.paste(255, box)
    return mask


def img2img_payload(**overrides) -> dict:
    payload = txt2img_payload(
        init_images=["data:image/png;base64," + b64png(init_image())], denoising_strength=0.5, steps=4
    )
    payload.update(overrides)
    return payload


def pixels(data) -> np.ndarray:
    image = png(data) if isinstance(data, bytes) else data
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_img2img_changes_the_image_but_keeps_the_size(generator, sd15_models):
    result = run(generator, "img2img", img2img_payload(), sd15_models)
    out = png(result.images[0])
    assert out.size == (64, 64)
    assert np.abs(pixels(out) - pixels(init_image())).mean() > 1
    assert "Denoising strength: 0.5" in out.text["parameters"]
    assert result.parameters["init_images"] is None  # the WebUI does not echo input images


def test_denoising_strength_matters_and_zero_returns_the_input(generator, sd15_models):
    # Random VAE weights do not reconstruct the input, so only "different" is meaningful here.
    light = run(generator, "img2img", img2img_payload(denoising_strength=0.25), sd15_models).images[0]
    heavy = run(generator, "img2img", img2img_payload(denoising_strength=1.0), sd15_models).images[0]
    assert light != heavy
    none = run(generator, "img2img", img2img_payload(denoising_strength=0.0), sd15_models).images[0]
    assert np.abs(pixels(none) - pixels(init_image())).max() == 0


def test_bare_base64_and_batches(generator, sd15_models):
    payload = img2img_payload(init_images=[b64png(init_image())], batch_size=2, n_iter=2)
    result = run(generator, "img2img", payload, sd15_models)
    assert len(result.images) == 4 and info(result)["all_seeds"] == [42, 43, 44, 45]


@pytest.mark.parametrize("mode", [0, 1, 2, 3])
def test_resize_modes_give_the_asked_size(generator, sd15_models, mode):
    wide = init_image(96, 48)
    payload = img2img_payload(init_images=[b64png(wide)], resize_mode=mode, width=64, height=64)
    assert png(run(generator, "img2img", payload, sd15_models).images[0]).size == (64, 64)


def test_crop_and_resize_crops_and_resize_and_fill_pads():
    wide = Image.new("RGB", (100, 50), (255, 0, 0))
    wide.paste((0, 0, 255), (0, 0, 10, 50))  # a blue band on the left edge
    cropped = resize_image(1, wide, 64, 64)
    filled = resize_image(2, wide, 64, 64)
    assert cropped.getpixel((0, 32))[2] < 128  # the blue edge was cropped away
    assert filled.getpixel((32, 0))[0] > 128  # the top band is the stretched red image, not black


def test_broken_init_image_is_a_clear_error(generator, sd15_models):
    with pytest.raises(GenerationError, match="not a readable image"):
        run(generator, "img2img", img2img_payload(init_images=["aGVsbG8="]), sd15_models)


@pytest.mark.parametrize("full_res", [False, True])
def test_inpainting_leaves_unmasked_pixels_nearly_unchanged(generator, sd15_models, full_res):
    mask = square_mask(box=(24, 24, 40, 40))
    payload = img2img_payload(
        mask=b64png(mask), mask_blur=2, denoising_strength=0.9, inpaint_full_res=full_res, inpaint_full_res_padding=4
    )
    out = pixels(run(generator, "img2img", payload, sd15_models).images[0])
    source = pixels(init_image())
    outside = np.ones((64, 64), bool)
    outside[18:46, 18:46] = False  # the mask plus its blur
    assert np.abs(out - source)[outside].max() <= 2
    assert np.abs(out - source)[28:36, 28:36].mean() > 10


@pytest.mark.parametrize(("steps", "strength"), [(1, 0.9), (2, 0.3)])
def test_inpainting_with_fewer_steps_than_diffusers_allows_runs_the_webuis_one_step(
    generator, sd15_models, steps, strength
):
    # The WebUI runs int(strength * steps) + 1 = 1 step here; diffusers' own arithmetic would give 0.
    calls = []
    payload = img2img_payload(mask=b64png(square_mask()), mask_blur=0, steps=steps, denoising_strength=strength)
    out = pixels(run(generator, "img2img", payload, sd15_models, progress=lambda s, t: calls.append((s, t))).images[0])
    source = pixels(init_image())
    assert calls[-1] == (1, 1)
    assert np.abs(out - source)[20:44, 20:44].mean() > 1
    outside = np.ones((64, 64), bool)
    outside[12:52, 12:52] = False
    assert np.abs(out - source)[outside].max() <= 2


def test_inverted_mask_repaints_the_outside(generator, sd15_models):
    payload = img2img_payload(mask=b64png(square_mask()), mask_blur=0, inpainting_mask_invert=1, denoising_strength=0.9)
    out, source = pixels(run(generator, "img2img", payload, sd15_models).images[0]), pixels(init_image())
    assert np.abs(out - source)[20:44, 20:44].max() <= 2
    assert np.abs(out - source)[:8].mean() > 10


@pytest.mark.parametrize("fill", [0, 2, 3])
def test_inpainting_fill_modes_run(generator, sd15_models, fill):
    payload = img2img_payload(mask=b64png(square_mask()), inpainting_fill=fill, denoising_strength=1.0)
    assert png(run(generator, "img2img", payload, sd15_models).images[0]).size == (64, 64)


def test_inpainting_checkpoint_with_nine_channel_unet(generator, sd15_inpaint_checkpoint):
    models = {"Stable-diffusion": [sd15_inpaint_checkpoint]}
    payload = img2img_payload(mask=b64png(square_mask()), mask_blur=0, denoising_strength=1.0)
    out, source = pixels(run(generator, "img2img", payload, models).images[0]), pixels(init_image())
    assert np.abs(out - source)[:10].max() <= 2
    assert np.abs(out - source)[20:44, 20:44].mean() > 10


def test_txt2img_on_an_inpainting_checkpoint(generator, sd15_inpaint_checkpoint):
    from tests.support.generation_jobs import txt2img_payload

    models = {"Stable-diffusion": [sd15_inpaint_checkpoint]}
    first = run(generator, "txt2img", txt2img_payload(batch_size=2), models)
    assert [png(i).size for i in first.images] == [(64, 64), (64, 64)]
    assert run(generator, "txt2img", txt2img_payload(batch_size=2), models).images == first.images
