"""txt2img through the Generator on a tiny SD 1.x-style checkpoint: what a WebUI user would notice."""

from __future__ import annotations

import numpy as np
import pytest

from openesd.generation import GenerationError
from tests.support.generation_jobs import info, png, run, txt2img_payload


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(png(data).convert("RGB"), dtype=np.int16)


def test_batch_size_times_n_iter_images_of_the_asked_size(generator, sd15_models):
    result = run(generator, "txt2img", txt2img_payload(batch_size=2, n_iter=2, width=64, height=96), sd15_models)
    assert len(result.images) == 4
    assert {png(i).size for i in result.images} == {(64, 96)}
    assert info(result)["all_seeds"] == [42, 43, 44, 45]
    assert len(set(result.images)) == 4


def test_same_seed_same_bytes_different_seed_different_bytes(generator, sd15_models):
    first = run(generator, "txt2img", txt2img_payload(sampler_name="Euler a"), sd15_models).images[0]
    again = run(generator, "txt2img", txt2img_payload(sampler_name="Euler a"), sd15_models).images[0]
    other = run(generator, "txt2img", txt2img_payload(sampler_name="Euler a", seed=43), sd15_models).images[0]
    assert first == again
    assert first != other


def test_image_seed_does_not_depend_on_its_batch(generator, sd15_models):
    # A1111: the second image of a batch seeded 42 is the image seeded 43.
    batch = run(generator, "txt2img", txt2img_payload(batch_size=2), sd15_models)
    alone = run(generator, "txt2img", txt2img_payload(seed=43), sd15_models)
    assert np.abs(pixels(batch.images[1]) - pixels(alone.images[0])).max() <= 2


def test_infotext_names_prompt_sampler_seed_size_and_model(generator, sd15_models, sd15_checkpoint):
    result = run(generator, "txt2img", txt2img_payload(sampler_name="DPM++ 2M Karras", seed=7), sd15_models)
    text = png(result.images[0]).text["parameters"]
    lines = text.split("\n")
    assert lines[0] == "a red fox"
    assert lines[1] == "Negative prompt: blurry"
    # The WebUI 1.10 splits the old combined name into sampler and schedule type; the API's floats stay floats.
    assert "Steps: 2, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7.0, Seed: 7, Size: 64x64" in lines[2]
    assert f"Model: {sd15_checkpoint.stem}" in lines[2] and "Model hash: " in lines[2]
    data = info(result)
    assert data["infotexts"] == [text] and data["seed"] == 7 and data["sampler_name"] == "DPM++ 2M"
    assert result.parameters["prompt"] == "a red fox"


def test_random_seed_is_reported(generator, sd15_models):
    result = run(generator, "txt2img", txt2img_payload(seed=-1), sd15_models)
    seed = info(result)["seed"]
    assert seed >= 0 and f"Seed: {seed}," in png(result.images[0]).text["parameters"]


def test_variation_seed_changes_the_image_a_little(generator, sd15_models):
    base = pixels(run(generator, "txt2img", txt2img_payload(), sd15_models).images[0])
    varied = run(generator, "txt2img", txt2img_payload(subseed=5, subseed_strength=0.3), sd15_models)
    assert "Variation seed: 5, Variation seed strength: 0.3" in png(varied.images[0]).text["parameters"]
    assert np.abs(pixels(varied.images[0]) - base).mean() > 0


def test_seed_resize_keeps_the_output_size(generator, sd15_models):
    result = run(generator, "txt2img", txt2img_payload(seed_resize_from_w=48, seed_resize_from_h=48), sd15_models)
    assert png(result.images[0]).size == (64, 64)
    assert "Seed resize from: 48x48" in png(result.images[0]).text["parameters"]


def test_tiling_changes_the_image(generator, sd15_models):
    plain = run(generator, "txt2img", txt2img_payload(), sd15_models).images[0]
    tiled = run(generator, "txt2img", txt2img_payload(tiling=True), sd15_models).images[0]
    assert plain != tiled
    again = run(generator, "txt2img", txt2img_payload(), sd15_models).images[0]
    assert again == plain  # tiling does not leak into the next job on the cached model


def test_progress_reports_every_step(generator, sd15_models):
    seen = []
    run(generator, "txt2img", txt2img_payload(steps=3, n_iter=2), sd15_models, lambda s, t: seen.append((s, t)))
    assert seen[:6] == [(1, 6), (2, 6), (3, 6), (4, 6), (5, 6), (6, 6)]
    assert seen[-1] == (6, 6)


@pytest.mark.parametrize(
    ("overrides", "size"),
    [
        ({"hr_scale": 2, "hr_upscaler": "Latent"}, (128, 128)),
        ({"hr_resize_x": 96, "hr_resize_y": 0, "hr_upscaler": "Latent (bicubic antialiased)"}, (96, 96)),
        ({"hr_scale": 1.5, "hr_upscaler": "Lanczos", "hr_second_pass_steps": 2, "hr_sampler_name": "DDIM"}, (96, 96)),
    ],
)
def test_hires_fix_output_size(generator, sd15_models, overrides, size):
    payload = txt2img_payload(enable_hr=True, denoising_strength=0.6, **overrides)
    result = run(generator, "txt2img", payload, sd15_models)
    image = png(result.images[0])
    assert image.size == size
    assert f"Hires upscaler: {overrides['hr_upscaler']}" in image.text["parameters"]


def test_hires_with_unknown_upscaler_fails_listing_choices(generator, sd15_models):
    with pytest.raises(GenerationError, match="Upscaler 'SuperRes' is not available.*Lanczos"):
        run(generator, "txt2img", txt2img_payload(enable_hr=True, hr_upscaler="SuperRes"), sd15_models)


def test_clip_skip_changes_the_image_and_is_reported(generator, sd15_models):
    plain = run(generator, "txt2img", txt2img_payload(), sd15_models).images[0]
    skipped = run(
        generator, "txt2img", txt2img_payload(override_settings={"CLIP_stop_at_last_layers": 2}), sd15_models
    ).images[0]
    assert plain != skipped
    assert "Clip skip: 2" in png(skipped).text["parameters"]


def test_vae_override_selects_the_vae_file(generator, sd15_checkpoint, vae_file):
    models = {"Stable-diffusion": [sd15_checkpoint], "VAE": [vae_file]}
    plain = run(generator, "txt2img", txt2img_payload(), models)
    chosen = run(generator, "txt2img", txt2img_payload(override_settings={"sd_vae": vae_file.name}), models)
    assert plain.images[0] != chosen.images[0]
    assert f"VAE: {vae_file.name}" in png(chosen.images[0]).text["parameters"]  # with its extension, as the WebUI
    back = run(generator, "txt2img", txt2img_payload(override_settings={"sd_vae": "Automatic"}), models)
    assert back.images[0] == plain.images[0]


def test_checkpoint_override_picks_among_models(generator, sd15_checkpoint, sdxl_checkpoint):
    models = {"Stable-diffusion": [sd15_checkpoint, sdxl_checkpoint]}
    result = run(
        generator,
        "txt2img",
        txt2img_payload(override_settings={"sd_model_checkpoint": f"{sdxl_checkpoint.name} [0123456789]"}),
        models,
    )
    assert f"Model: {sdxl_checkpoint.stem}" in png(result.images[0]).text["parameters"]
    with pytest.raises(GenerationError, match="'missing.safetensors' is not among"):
        run(
            generator,
            "txt2img",
            txt2img_payload(override_settings={"sd_model_checkpoint": "missing.safetensors"}),
            models,
        )


def test_unknown_enabled_script_fails_the_job(generator, sd15_models):
    payload = txt2img_payload(alwayson_scripts={"roop": {"args": [True]}})
    with pytest.raises(GenerationError, match="'roop' is not supported; supported: controlnet"):
        run(generator, "txt2img", payload, sd15_models)


def test_tiled_vae_script_runs(generator, sd15_models):
    payload = txt2img_payload(alwayson_scripts={"tiled vae": {"args": [True, 2048, 128, True, True, True, False]}})
    assert png(run(generator, "txt2img", payload, sd15_models).images[0]).size == (64, 64)


def test_no_checkpoint_is_a_clear_error(generator):
    with pytest.raises(GenerationError, match="names no Stable-diffusion checkpoint"):
        run(generator, "txt2img", txt2img_payload(), {})


def test_unknown_task_lists_valid_tasks(generator, sd15_models):
    with pytest.raises(GenerationError, match="task 'txt2video' is not supported; valid tasks: txt2img, img2img"):
        run(generator, "txt2video", {}, sd15_models)


def test_a_half_precision_model_stays_in_half_precision_across_jobs(sd15_models, tmp_path):
    # A GPU worker keeps its models in fp16; deriving a job's pipeline must not cast the shared,
    # cached weights to fp32 (twice the memory, a slower UNet). bf16 stands in for fp16 on the CPU.
    import torch

    from openesd.generation import Generator
    from openesd.generation.models.device import DeviceSpec

    generator = Generator(device="cpu")
    generator.device = DeviceSpec("cpu", torch.bfloat16, torch.bfloat16)
    for task, payload in (("txt2img", txt2img_payload()), ("txt2img", txt2img_payload(enable_hr=True))):
        assert len(run(generator, task, payload, sd15_models).images) == 1
    loaded = generator.cache.get("checkpoint", sd15_models["Stable-diffusion"][0], lambda: None)
    assert {p.dtype for p in loaded.pipe.unet.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in loaded.pipe.text_encoder.parameters()} == {torch.bfloat16}
