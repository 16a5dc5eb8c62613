"""`extra-single-image` and `extra-batch-images`: what a WebUI extras payload gives back."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from openesd.errors import GenerationError
from openesd.generation.tasks.extras import run_extras
from tests.support.tiny_extras import sample_image, to_base64, write_tiny_esrgan

# The extras payload ESD's samples send (esd-api.md §14.4), with a bare base64 JPEG.
REAL_PAYLOAD = {
    "resize_mode": 0,
    "show_extras_results": True,
    "gfpgan_visibility": 0,
    "codeformer_visibility": 0,
    "codeformer_weight": 0,
    "upscaling_resize": 2,
    "upscaling_resize_w": 128,
    "upscaling_resize_h": 128,
    "upscaling_crop": True,
    "upscaler_1": "Lanczos",
    "upscaler_2": "None",
    "extras_upscaler_2_visibility": 0,
}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("esrgan")
    return {
        "ESRGAN": [
            write_tiny_esrgan(folder / "RealESRGAN_x4plus.pth", scale=4),
            write_tiny_esrgan(folder / "RealESRGAN_x2plus.safetensors", scale=2),
        ]
    }


def single(models=None, picture=None, **changes):
    payload = REAL_PAYLOAD | {"image": to_base64(picture or sample_image(48, 32))} | changes
    return run_extras("extra-single-image", payload, models or {})


def png(data: bytes) -> Image.Image:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return Image.open(io.BytesIO(data))


def test_the_real_payload_doubles_width_and_height():
    result = single()
    assert len(result.images) == 1
    assert png(result.images[0]).size == (96, 64)
    assert result.html_info == "<p>Postprocess upscale by: 2.0, Postprocess upscaler: Lanczos</p>"
    assert result.parameters is None and result.info is None


def test_to_size_with_crop_gives_exactly_that_size():
    result = single(resize_mode=1, upscaling_resize_w=100, upscaling_resize_h=100, upscaling_crop=True)
    image = png(result.images[0])
    assert image.size == (100, 100)
    # Centre crop of the 150×100 enlargement: the red/blue border stays in the middle.
    row = np.asarray(image)[50].astype(int)
    assert row[10, 0] > row[10, 2] and row[90, 2] > row[90, 0]
    assert result.html_info == (
        "<p>Postprocess upscale to: 100x100, Postprocess crop to: 100x100, Postprocess upscaler: Lanczos</p>"
    )


def test_to_size_without_crop_keeps_the_aspect_ratio_covering_the_box():
    result = single(resize_mode=1, upscaling_resize_w=100, upscaling_resize_h=100, upscaling_crop=False)
    assert png(result.images[0]).size == (150, 100)


def test_lanczos_and_nearest_give_different_pictures():
    lanczos = np.asarray(png(single(upscaler_1="Lanczos").images[0])).astype(int)
    nearest = np.asarray(png(single(upscaler_1="Nearest").images[0])).astype(int)
    assert lanczos.shape == nearest.shape
    assert np.abs(lanczos - nearest).max() > 10


def test_model_upscaler_by_file_name(models):
    result = single(models, upscaler_1="RealESRGAN_x4plus.pth", upscaling_resize=2)
    assert png(result.images[0]).size == (96, 64)
    assert "Postprocess upscaler: RealESRGAN_x4plus.pth" in result.html_info
    x2 = single(models, upscaler_1="RealESRGAN_x2plus", upscaling_resize=4)
    assert png(x2.images[0]).size == (192, 128)


def test_same_payload_same_bytes(models):
    first, again = (single(models, upscaler_1="RealESRGAN_x4plus") for _ in range(2))
    assert first.images == again.images


def test_second_upscaler_is_blended_by_its_visibility(models):
    first = png(single(models, upscaler_1="Nearest").images[0])
    second = png(single(models, upscaler_1="RealESRGAN_x2plus").images[0])
    both = {"upscaler_1": "Nearest", "upscaler_2": "RealESRGAN_x2plus"}
    result = single(models, **both, extras_upscaler_2_visibility=0.4)
    blended = np.asarray(png(result.images[0])).astype(int)
    expected = np.asarray(Image.blend(first, second, 0.4)).astype(int)
    assert np.abs(blended - expected).max() <= 1
    assert np.abs(blended - np.asarray(first).astype(int)).mean() > 2
    assert result.html_info.endswith("Postprocess upscaler 2: RealESRGAN_x2plus</p>")
    hidden = single(models, **both, extras_upscaler_2_visibility=0)
    assert hidden.images[0] == single(models, upscaler_1="Nearest").images[0]


def test_no_first_upscaler_leaves_the_image_as_is():
    image = sample_image(48, 32)
    result = single(picture=image, upscaler_1="None")
    assert png(result.images[0]).size == (48, 32)
    assert result.html_info == "<p></p>"


def test_data_url_input_is_accepted():
    payload = REAL_PAYLOAD | {"image": "data:image/png;base64," + to_base64(sample_image(20, 10), "PNG")}
    assert png(run_extras("extra-single-image", payload, {}).images[0]).size == (40, 20)


def test_unknown_upscaler_fails_with_the_list(models):
    with pytest.raises(GenerationError) as caught:
        single(models, upscaler_2="4x-UltraSharp", extras_upscaler_2_visibility=0.5)
    assert caught.value.status_code == 400
    assert caught.value.message.startswith(
        "Upscaler '4x-UltraSharp' is not available; choose one of: "
        "None, Lanczos, Nearest, RealESRGAN_x4plus, RealESRGAN_x2plus"
    )


@pytest.mark.parametrize("key", ["gfpgan_visibility", "codeformer_visibility"])
def test_face_restoration_is_refused_clearly(key):
    with pytest.raises(GenerationError, match=f"{key} is 0.5: face restoration .* is not supported"):
        single(**{key: 0.5})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"resize_mode": 2}, "resize_mode must be 0 .* got 2"),
        ({"upscaling_resize": 9}, "upscaling_resize must be between 1 and 8, got 9.0"),
        ({"extras_upscaler_2_visibility": 1.5}, "visibility must be between 0 and 1, got 1.5"),
        ({"upscaling_resize": "big"}, "upscaling_resize must be a number, got 'big'"),
        ({"image": "not base64 at all!"}, "image is not valid base64"),
        ({"image": "aGVsbG8gd29ybGQ="}, r"image is not a readable image \(11 bytes after base64 decoding\)"),
        ({"image": ""}, "image is empty"),
    ],
)
def test_bad_payloads_fail_naming_the_value(changes, message):
    with pytest.raises(GenerationError, match=message):
        single(**changes)


def test_batch_returns_one_image_per_input():
    entries = [
        {"data": to_base64(sample_image(48, 32)), "name": "a.jpg"},
        {"data": to_base64(sample_image(20, 30)), "name": "b.jpg"},
        {"data": "data:image/png;base64," + to_base64(sample_image(8, 8), "PNG"), "name": "c.png"},
    ]
    payload = REAL_PAYLOAD | {"imageList": entries}
    result = run_extras("extra-batch-images", payload, {})
    assert [png(data).size for data in result.images] == [(96, 64), (40, 60), (16, 16)]
    assert result.html_info == "<p>Postprocess upscale by: 2.0, Postprocess upscaler: Lanczos</p>"


def test_batch_names_the_broken_entry():
    entries = [{"data": to_base64(sample_image()), "name": "a.jpg"}, {"data": "%%%", "name": "b.jpg"}]
    with pytest.raises(GenerationError, match=r"imageList\[1\]\.data: image is not a readable image"):
        run_extras("extra-batch-images", REAL_PAYLOAD | {"imageList": entries}, {})
    with pytest.raises(GenerationError, match="imageList must be a non-empty list"):
        run_extras("extra-batch-images", REAL_PAYLOAD | {"imageList": []}, {})


def test_the_worker_entry_runs_extras_with_model_upscalers(models):
    from openesd.generation import GenerationRequest, Generator

    payload = REAL_PAYLOAD | {"image": to_base64(sample_image(48, 32)), "upscaler_1": "RealESRGAN_x4plus"}
    request = GenerationRequest(task="extra-single-image", payload=payload, models={"ESRGAN": models["ESRGAN"]})
    result = Generator(device="cpu").run(request)
    assert png(result.images[0]).size == (96, 64)
    assert result.html_info == "<p>Postprocess upscale by: 2.0, Postprocess upscaler: RealESRGAN_x4plus</p>"
