"""The GPU fast path on the CPU: each setting on gives the image it gives off (bf16 within a PSNR), LoRAs
still count with fused QKV, a compiled UNet switches LoRAs without recompiling, and the settings reach the
Generator."""

from __future__ import annotations

import numpy as np
import pytest

from openesd.generation import GenerationError
from openesd.generation.models.fastpath import FastPath
from tests.support import tiny_adapters as ta
from tests.support.generation_jobs import png, run, txt2img_payload

# Measured on the tiny SD 1.5 (2 Euler steps, 64x64): channels_last, classic attention and fused QKV change
# no 8-bit pixel by more than 1 level (float summation order); bf16 weights stay above 30 dB PSNR.
MAX_LEVELS = 1
MIN_BF16_PSNR_DB = 30.0


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(png(data).convert("RGB"), dtype=np.float64)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def fast_generator(**options):
    from openesd.generation import Generator

    return Generator(device="cpu", fastpath=FastPath(**options))


@pytest.fixture(scope="module")
def plain_image(generator, sd15_checkpoint) -> np.ndarray:
    return pixels(run(generator, "txt2img", txt2img_payload(), {"Stable-diffusion": [sd15_checkpoint]}).images[0])


@pytest.fixture(scope="module")
def fused():
    """Fused QKV, and tiled VAE above one 64x64 image: one load shared by the tests of both."""
    return fast_generator(fuse_qkv=True, vae_tiling_pixels=64 * 64)


@pytest.mark.parametrize("options", [{"channels_last": True}, {"attention": "classic"}], ids=lambda o: next(iter(o)))
def test_a_fast_path_setting_gives_the_same_image_as_without_it(options, sd15_models, plain_image):
    image = pixels(run(fast_generator(**options), "txt2img", txt2img_payload(), sd15_models).images[0])
    assert np.abs(image - plain_image).max() <= MAX_LEVELS


def test_fused_qkv_gives_the_same_image_as_without_it(fused, sd15_models, plain_image):
    image = pixels(run(fused, "txt2img", txt2img_payload(), sd15_models).images[0])
    pipe = fused.cache.get("checkpoint", sd15_models["Stable-diffusion"][0], lambda: None).pipe
    assert any("Fused" in type(p).__name__ for p in pipe.unet.attn_processors.values())
    assert np.abs(image - plain_image).max() <= MAX_LEVELS


def test_bf16_weights_on_the_cpu_stay_close_to_fp32(sd15_models, plain_image):
    generator = fast_generator(cpu_dtype="bf16")
    image = pixels(run(generator, "txt2img", txt2img_payload(), sd15_models).images[0])
    assert generator.device.dtype.is_floating_point and str(generator.device.dtype) == "torch.bfloat16"
    assert psnr(image, plain_image) >= MIN_BF16_PSNR_DB


def test_with_fused_qkv_a_lora_still_counts_and_the_next_job_is_plain_again(
    fused, generator, sd15_models, plain_image, tmp_path
):
    models = {**sd15_models, "Lora": [ta.write_kohya_lora(tmp_path / "style.safetensors")]}
    tagged = txt2img_payload(prompt="a red fox <lora:style:1>")
    unfused = pixels(run(generator, "txt2img", tagged, models).images[0])
    with_lora = pixels(run(fused, "txt2img", tagged, models).images[0])
    after = pixels(run(fused, "txt2img", txt2img_payload(), models).images[0])
    assert np.abs(with_lora - unfused).max() <= MAX_LEVELS
    assert np.abs(with_lora - plain_image).max() > 2
    assert np.abs(after - plain_image).max() <= MAX_LEVELS


def test_vae_tiling_turns_on_above_the_pixel_count_only(fused, sd15_models):
    vae = fused.cache.get("checkpoint", sd15_models["Stable-diffusion"][0], lambda: None).pipe.vae
    run(fused, "txt2img", txt2img_payload(batch_size=2), sd15_models)
    assert vae.use_tiling and vae.use_slicing
    run(fused, "txt2img", txt2img_payload(), sd15_models)
    assert not vae.use_tiling and not vae.use_slicing


def test_on_a_compiled_unet_loras_switch_without_a_new_graph_and_give_the_uncompiled_images(
    generator, sd15_models, plain_image, tmp_path
):
    """dynamo alone (backend "eager"): the graphs are the ones inductor would compile, without its minutes.
    Fused QKV is on too, so the LoRA must also reach the fused projections."""
    from torch._dynamo.utils import counters

    compiled = fast_generator(compile_mode="default", compile_backend="eager", fuse_qkv=True)
    style, other = (
        ta.write_kohya_lora(tmp_path / "style.safetensors", seed=5),
        ta.write_kohya_lora(tmp_path / "other.safetensors", seed=6),
    )
    models = {**sd15_models, "Lora": [style, other]}
    first = pixels(run(compiled, "txt2img", txt2img_payload(), models).images[0])
    graphs = counters["stats"]["unique_graphs"]
    for prompt in ["a red fox <lora:style:1>", "a red fox <lora:style:0.5> <lora:other:1>", "a red fox"]:
        payload = txt2img_payload(prompt=prompt)
        image = pixels(run(compiled, "txt2img", payload, models).images[0])
        uncompiled = pixels(run(generator, "txt2img", payload, models).images[0])
        assert counters["stats"]["unique_graphs"] == graphs, f"{prompt!r} recompiled the UNet"
        assert np.abs(image - uncompiled).max() <= MAX_LEVELS, prompt
        assert (np.abs(image - plain_image).max() > 2) == ("lora" in prompt), prompt
    assert np.abs(first - plain_image).max() <= MAX_LEVELS


def test_compile_is_wired_in_place_with_its_cache_under_the_data_dir(sd15_checkpoint, tmp_path, monkeypatch):
    import torch

    from openesd.generation.models import fastpath
    from openesd.generation.models.loading import load_checkpoint
    from openesd.settings import Settings

    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    options = FastPath.from_settings(Settings(data_dir=tmp_path, compile_mode="max-autotune-no-cudagraphs"))
    pipe = load_checkpoint(sd15_checkpoint, "cpu", torch.float32).pipe
    unet = pipe.unet
    fastpath.apply(pipe, options)
    assert pipe.unet is unet  # compiled in place: LoRA loading and derived pipelines see the same module
    assert unet._compiled_call_impl is not None and pipe.vae.decoder._compiled_call_impl is not None
    assert (tmp_path / "cache" / "inductor").is_dir()
    assert __import__("os").environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "cache" / "inductor")


def test_a_weights_dtype_a_device_cannot_take_is_refused_by_name():
    from openesd.generation.models.device import resolve

    with pytest.raises(GenerationError, match="'fp16' is not supported on the CPU; valid: fp32, bf16"):
        resolve("cpu", cpu_dtype="fp16")


@pytest.mark.gpu
def test_on_cuda_compile_gives_the_same_image_and_does_not_recompile_between_jobs(sd15_models, tmp_path):
    import torch
    from torch._dynamo.utils import counters

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    from openesd.generation import Generator

    plain = pixels(run(Generator(device="cuda"), "txt2img", txt2img_payload(), sd15_models).images[0])
    compiled = Generator(device="cuda", fastpath=FastPath(compile_mode="default", channels_last=True, fuse_qkv=True))
    first = pixels(run(compiled, "txt2img", txt2img_payload(), sd15_models).images[0])
    graphs = counters["stats"]["unique_graphs"]
    second = pixels(run(compiled, "txt2img", txt2img_payload(seed=7), sd15_models).images[0])
    models = {**sd15_models, "Lora": [ta.write_kohya_lora(tmp_path / "style.safetensors")]}
    with_lora = pixels(run(compiled, "txt2img", txt2img_payload(prompt="a red fox <lora:style:1>"), models).images[0])
    assert counters["stats"]["unique_graphs"] == graphs
    assert np.abs(with_lora - first).max() > 2  # the LoRA, merged into the compiled UNet, counts
    assert psnr(first, plain) >= MIN_BF16_PSNR_DB and not np.array_equal(first, second)
