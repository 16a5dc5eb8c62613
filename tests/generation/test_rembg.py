"""rembg: background removal with an uploaded ONNX model, as the rembg extension's `POST /rembg`."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from openesd.errors import GenerationError
from openesd.generation.tasks.rembg import run_rembg
from tests.support.tiny_extras import sample_image, to_base64, write_tiny_u2net_onnx

WIDTH, HEIGHT = 96, 64


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rembg")
    return {
        "rembg": [
            write_tiny_u2net_onnx(folder / "u2net_human_seg.onnx"),
            write_tiny_u2net_onnx(folder / "my-cutter.onnx"),
        ]
    }


@pytest.fixture(autouse=True)
def rembg_home(tmp_path, monkeypatch):
    """rembg's own model folders, pointed somewhere empty: nothing may be fetched into them."""
    home = tmp_path / "rembg-home"
    monkeypatch.setenv("REMBG_HOME", str(home))
    monkeypatch.setenv("U2NET_HOME", str(home))
    yield home
    assert not home.exists()


def remove(models, **changes) -> Image.Image:
    # The payload ESD's samples send (esd-api.md §14.5): bare base64 JPEG and a model name.
    payload = {"input_image": to_base64(sample_image(WIDTH, HEIGHT)), "model": "u2net_human_seg"} | changes
    result = run_rembg(payload, models)
    assert len(result.images) == 1 and result.images[0][:8] == b"\x89PNG\r\n\x1a\n"
    return Image.open(io.BytesIO(result.images[0]))


def halves(image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """The red (foreground for the tiny model) and blue (background) halves, away from the border."""
    array = np.asarray(image).astype(int)
    return array[:, : WIDTH // 2 - 8], array[:, WIDTH // 2 + 8 :]


def test_cutout_is_rgba_of_the_input_size_with_the_background_transparent(models):
    cutout = remove(models)
    assert cutout.mode == "RGBA" and cutout.size == (WIDTH, HEIGHT)
    foreground, background = halves(cutout)
    assert foreground[..., 3].min() > 200
    assert background[..., 3].max() < 50
    # The kept pixels are the picture's own (red).
    assert foreground[..., 0].mean() > 150


def test_return_mask_gives_the_mask_itself(models):
    mask = remove(models, return_mask=True)
    assert mask.mode == "L" and mask.size == (WIDTH, HEIGHT)
    foreground, background = halves(mask)
    assert foreground.mean() > 200 and background.mean() < 50
    # The cutout's alpha is this mask.
    cutout_alpha = np.asarray(remove(models))[..., 3].astype(int)
    assert np.abs(cutout_alpha - np.asarray(mask).astype(int)).max() <= 1


def test_alpha_matting_runs_and_keeps_the_subject(models):
    plain = remove(models)
    matted = remove(
        models,
        alpha_matting=True,
        alpha_matting_foreground_threshold=200,
        alpha_matting_background_threshold=20,
        alpha_matting_erode_size=3,
    )
    assert matted.mode == "RGBA" and matted.size == (WIDTH, HEIGHT)
    foreground, background = halves(matted)
    assert foreground[..., 3].mean() > 200 and background[..., 3].mean() < 50
    assert np.asarray(matted).tobytes() != np.asarray(plain).tobytes()


def test_a_model_with_any_other_name_runs_as_u2net(models):
    cutout = remove(models, model="my-cutter")
    foreground, background = halves(cutout)
    assert foreground[..., 3].mean() > 200 and background[..., 3].mean() < 50


def test_unknown_model_fails_with_the_list(models):
    with pytest.raises(GenerationError) as caught:
        remove(models, model="isnet-anime")
    assert caught.value.message == (
        "rembg model 'isnet-anime' is not available; choose one of: u2net_human_seg, my-cutter"
    )
    with pytest.raises(GenerationError, match="choose one of: none \\(upload one as type rembg\\)"):
        remove({}, model="u2net")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"alpha_matting_background_threshold": 256}, "threshold must be between 0 and 255, got 256"),
        ({"alpha_matting_erode_size": -1}, "alpha_matting_erode_size must be 0 or more, got -1"),
        ({"alpha_matting_erode_size": 2.5}, "alpha_matting_erode_size must be a whole number, got 2.5"),
        ({"input_image": ""}, "image is empty"),
    ],
)
def test_bad_bodies_fail_naming_the_value(models, changes, message):
    with pytest.raises(GenerationError, match=message):
        remove(models, **changes)


def test_sessions_are_made_once_per_model_file(models, monkeypatch):
    from openesd.generation.tasks import rembg as module

    made = []
    real_new_session = module._new_session
    monkeypatch.setattr(module, "_new_session", lambda path: made.append(path) or real_new_session(path))
    sessions = module.RembgSessions()
    payload = {"input_image": to_base64(sample_image(WIDTH, HEIGHT)), "model": "my-cutter"}
    first = run_rembg(payload, models, sessions)
    assert run_rembg(payload, models, sessions).images == first.images
    assert [path.name for path in made] == ["my-cutter.onnx"]


def test_a_broken_onnx_file_fails_clearly(tmp_path):
    path = tmp_path / "u2net.onnx"
    path.write_bytes(b"not an onnx graph")
    with pytest.raises(GenerationError, match="rembg model file u2net.onnx cannot be loaded by onnxruntime"):
        remove({"rembg": [path]}, model="u2net")


def test_the_worker_entry_runs_rembg(models):
    from openesd.generation import GenerationRequest, Generator

    payload = {"input_image": to_base64(sample_image(WIDTH, HEIGHT)), "model": "u2net_human_seg"}
    result = Generator(device="cpu").run(GenerationRequest(task="rembg", payload=payload, models=models))
    image = Image.open(io.BytesIO(result.images[0]))
    assert image.mode == "RGBA" and image.size == (WIDTH, HEIGHT)
