"""Upscalers by WebUI name: PIL resamplers and uploaded ESRGAN files loaded through spandrel."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pytest

from openesd.errors import GenerationError
from openesd.generation.tasks.upscalers import Upscalers, upscale, upscale_to, upscaler_names
from tests.support.tiny_extras import sample_image, write_tiny_esrgan


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("esrgan")
    return {
        "ESRGAN": [
            write_tiny_esrgan(folder / "RealESRGAN_x4plus.pth", scale=4),
            write_tiny_esrgan(folder / "RealESRGAN_x2plus.pth", scale=2),
            write_tiny_esrgan(folder / "4x-Tiny.safetensors", scale=4, layout="esrgan"),
        ]
    }


def pixels(image) -> np.ndarray:
    return np.asarray(image.convert("RGB")).astype(np.int16)


def test_lanczos_and_nearest_give_the_size_and_differ():
    image = sample_image(48, 32)
    lanczos = upscale(image, "Lanczos", 2, {})
    nearest = upscale(image, "Nearest", 2, {})
    assert lanczos.size == nearest.size == (96, 64)
    assert np.abs(pixels(lanczos) - pixels(nearest)).max() > 0
    # Nearest only repeats source pixels.
    assert (pixels(nearest)[::2, ::2] == pixels(image)).all()


@pytest.mark.parametrize(
    "name", ["RealESRGAN_x4plus", "RealESRGAN_x2plus.pth", "4x-Tiny", "4x-Tiny.safetensors", "R-ESRGAN 4x+"]
)
def test_model_upscaler_by_file_name_stem_or_webui_name(models, name):
    image = sample_image(48, 32)
    result = pixels(upscale(image, name, 2, models))
    assert result.shape == (64, 96, 3)
    # Still the picture (red left half, blue right half) ...
    left, right = result[:, :40], result[:, 56:]
    assert left[..., 0].mean() > left[..., 2].mean() + 50
    assert right[..., 2].mean() > right[..., 0].mean() + 50
    # ... but the network's own output, not a plain resample.
    assert np.abs(result - pixels(upscale(image, "Lanczos", 2, {}))).mean() > 5


def test_4x_model_asked_for_2x_and_3x_gives_exactly_that(models):
    image = sample_image(40, 24)
    assert upscale(image, "RealESRGAN_x4plus", 2, models).size == (80, 48)
    assert upscale(image, "RealESRGAN_x4plus", 3, models).size == (120, 72)
    assert upscale_to(image, "RealESRGAN_x2plus", 100, 50, models).size == (100, 50)


def test_2x_model_asked_for_4x_runs_the_model_twice(models):
    image = sample_image(24, 16)
    once = upscale(image, "RealESRGAN_x2plus", 2, models)
    twice = upscale(image, "RealESRGAN_x2plus", 4, models)
    assert twice.size == (96, 64)
    assert (pixels(twice) == pixels(upscale(once, "RealESRGAN_x2plus", 2, models))).all()
    assert np.abs(pixels(twice) - pixels(once.resize((96, 64)))).mean() > 5


def test_tiles_with_enough_overlap_match_the_whole_image(models):
    image = sample_image(48, 40)
    whole = pixels(Upscalers(tile_size=512).upscale(image, "RealESRGAN_x4plus", 4, models))
    tiled = pixels(Upscalers(tile_size=16, tile_overlap=16).upscale(image, "RealESRGAN_x4plus", 4, models))
    seams = pixels(Upscalers(tile_size=16, tile_overlap=0).upscale(image, "RealESRGAN_x4plus", 4, models))
    assert tiled.shape == whole.shape == (160, 192, 3)
    assert np.abs(tiled - whole).max() <= 1
    # Without context the tile borders show: the tiles really were run separately.
    assert np.abs(seams - whole).max() > 5


def test_unknown_upscaler_lists_the_available_names(models):
    with pytest.raises(GenerationError) as caught:
        upscale(sample_image(), "SwinIR 4x", 2, models)
    message = caught.value.message
    assert "Upscaler 'SwinIR 4x' is not available" in message
    assert "None, Lanczos, Nearest, RealESRGAN_x4plus, RealESRGAN_x2plus, 4x-Tiny" in message
    assert upscaler_names(models)[:3] == ["None", "Lanczos", "Nearest"]


@dataclass
class NotATensor:
    note: str


def test_pickled_objects_are_refused_not_unpickled(tmp_path):
    import torch

    from tests.support.tiny_extras import esrgan_state_dict

    path = tmp_path / "evil.pth"
    torch.save({"params_ema": esrgan_state_dict(), "extra": NotATensor("runs code on load")}, path)
    with pytest.raises(GenerationError, match="evil.pth cannot be read as plain tensors"):
        upscale(sample_image(), "evil", 2, {"ESRGAN": [path]})


def test_a_file_that_is_no_upscaler_fails_clearly(tmp_path):
    from safetensors.torch import save_file
    import torch

    path = tmp_path / "notes.safetensors"
    save_file({"some.weight": torch.zeros(3, 3)}, str(path))
    with pytest.raises(GenerationError, match="notes.safetensors is not a model architecture spandrel knows"):
        upscale(sample_image(), "notes", 2, {"ESRGAN": [path]})


def test_a_damaged_file_fails_clearly(tmp_path):
    path = write_tiny_esrgan(tmp_path / "RealESRGAN_x4plus.safetensors")
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(GenerationError, match="RealESRGAN_x4plus.safetensors cannot be read as plain tensors"):
        upscale(sample_image(), "RealESRGAN_x4plus", 2, {"ESRGAN": [path]})


def test_bad_factor_fails():
    with pytest.raises(GenerationError, match="upscale factor must be greater than 0, got 0"):
        upscale(sample_image(), "Lanczos", 0, {})


def test_a_model_is_loaded_once_and_again_when_its_file_changes(tmp_path, monkeypatch):
    from openesd.generation.tasks import upscalers as module

    loads = []
    real_load = module._load_model

    def counting_load(path, device):
        loads.append(path)
        return real_load(path, device)

    monkeypatch.setattr(module, "_load_model", counting_load)
    path = write_tiny_esrgan(tmp_path / "RealESRGAN_x2plus.pth", scale=2, seed=1)
    models, cache, image = {"ESRGAN": [path]}, Upscalers(), sample_image(24, 16)
    first = pixels(cache.upscale(image, "RealESRGAN_x2plus", 2, models))
    assert (pixels(cache.upscale(image, "RealESRGAN_x2plus", 2, models)) == first).all()
    assert len(loads) == 1
    write_tiny_esrgan(path, scale=2, seed=2)  # the user uploads a new version under the same name
    stat = path.stat()  # a later mtime even where the file system's clock is coarse
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert (pixels(cache.upscale(image, "RealESRGAN_x2plus", 2, models)) != first).any()
    assert len(loads) == 2


@pytest.mark.gpu
def test_model_upscaler_on_cuda_matches_the_cpu(models):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    image = sample_image(48, 32)
    on_gpu = pixels(Upscalers(device="cuda").upscale(image, "RealESRGAN_x4plus", 2, models))
    on_cpu = pixels(Upscalers(device="cpu").upscale(image, "RealESRGAN_x4plus", 2, models))
    # fp16 on the GPU: a rounding step here and there, not another picture.
    assert np.abs(on_gpu - on_cpu).mean() < 2
