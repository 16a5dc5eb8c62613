"""LoRA, embeddings and ControlNet named in a WebUI payload, end to end through the Generator."""

from __future__ import annotations

import pytest

from openesd.generation import GenerationError
from tests.support import tiny_adapters as ta
from tests.support.generation_jobs import b64png, png, run, txt2img_payload


@pytest.fixture(scope="module")
def adapter_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("adapters")
    return {
        "Lora": [ta.write_kohya_lora(folder / "tiny_style.safetensors")],
        "embeddings": [ta.write_embedding_safetensors(folder / "tinyemb.safetensors")],
        "ControlNet": [ta.write_tiny_controlnet(folder / "tiny_canny.safetensors")],
    }


def models_with(sd15_checkpoint, files: dict, *kinds: str) -> dict:
    return {"Stable-diffusion": [sd15_checkpoint], **{k: files[k] for k in kinds}}


def test_lora_in_the_prompt_changes_the_image_and_is_switched_off_after(generator, sd15_checkpoint, adapter_files):
    models = models_with(sd15_checkpoint, adapter_files, "Lora")
    plain = run(generator, "txt2img", txt2img_payload(), models).images[0]
    styled = run(generator, "txt2img", txt2img_payload(prompt="a red fox <lora:tiny_style:1>"), models)
    assert styled.images[0] != plain
    text = png(styled.images[0]).text["parameters"]
    assert text.startswith("a red fox <lora:tiny_style:1>") and "Lora hashes: " in text
    assert run(generator, "txt2img", txt2img_payload(), models).images[0] == plain
    assert generator.cache.loads >= 1


def test_missing_lora_is_a_clear_error(generator, sd15_checkpoint, adapter_files):
    models = models_with(sd15_checkpoint, adapter_files, "Lora")
    with pytest.raises(GenerationError, match="LoRA 'nope' named in the prompt is not among .*tiny_style"):
        run(generator, "txt2img", txt2img_payload(prompt="fox <lora:nope:0.5>"), models)


def test_embedding_by_name_changes_the_image(generator, sd15_checkpoint, adapter_files):
    models = models_with(sd15_checkpoint, adapter_files, "embeddings")
    plain = run(generator, "txt2img", txt2img_payload(prompt="a fox"), models).images[0]
    with_emb = run(generator, "txt2img", txt2img_payload(prompt="a fox tinyemb"), models).images[0]
    assert plain != with_emb


def control_unit(**overrides) -> dict:
    from PIL import Image

    square = Image.new("RGB", (64, 64))
    square.paste((255, 255, 255), (16, 16, 48, 48))
    unit = {
        "enabled": True,
        "module": "canny",
        "model": "tiny_canny",
        "weight": 1.0,
        "image": b64png(square),
        "resize_mode": "Crop and Resize",
        "control_mode": "Balanced",
        "guidance_start": 0.0,
        "guidance_end": 1.0,
        "threshold_a": 100,
        "threshold_b": 200,
        "processor_res": 64,
    }
    return {**unit, **overrides}


@pytest.mark.parametrize("task", ["txt2img", "img2img"])
def test_enabled_controlnet_unit_guides_the_image(generator, sd15_checkpoint, adapter_files, task):
    models = models_with(sd15_checkpoint, adapter_files, "ControlNet")
    extra = {}
    if task == "img2img":
        from tests.generation.test_img2img import init_image

        extra = {"init_images": [b64png(init_image())], "denoising_strength": 0.6, "steps": 4}
    plain = run(generator, task, txt2img_payload(**extra), models).images
    disabled = {"controlnet": {"args": [control_unit(enabled=False)]}}
    assert run(generator, task, txt2img_payload(alwayson_scripts=disabled, **extra), models).images == plain
    enabled = {"controlnet": {"args": [control_unit()]}}
    guided = run(generator, task, txt2img_payload(alwayson_scripts=enabled, **extra), models).images
    assert png(guided[0]).size == (64, 64)
    assert guided[0] != plain[0]
