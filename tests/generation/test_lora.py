"""Kohya-format LoRAs on the tiny SD 1.x pipeline: they change the image, load once, switch without reloading."""

from __future__ import annotations

import numpy as np
import pytest

from openesd.generation.adapters import lora as lora_module
from openesd.errors import ModelError
from openesd.generation.adapters.lora import apply_loras
from openesd.generation.prompts.encoding import encode_prompts
from tests.support import tiny_adapters as ta
from tests.support import tiny_models as tm

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def pipe():
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(**tm.tiny_sd15_components())


@pytest.fixture(scope="module")
def lora_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lora")
    return ta.write_kohya_lora(folder / "style.safetensors", seed=5), ta.write_kohya_lora(
        folder / "other.safetensors", seed=6
    )


def render(pipe, prompt="a photo of a cat"):
    embeds = encode_prompts(pipe, prompt, "", 1, [])
    out = pipe(
        **embeds.as_kwargs(),
        num_inference_steps=2,
        height=32,
        width=32,
        output_type="np",
        generator=torch.Generator().manual_seed(7),
    )
    return out.images[0]


def test_lora_at_weight_one_changes_the_image_and_weight_zero_or_none_do_not(pipe, lora_files):
    style, _ = lora_files
    apply_loras(pipe, [])
    baseline = render(pipe)
    apply_loras(pipe, [(style, 1.0)])
    with_lora = render(pipe)
    apply_loras(pipe, [(style, 0.0)])
    at_zero = render(pipe)
    apply_loras(pipe, [])
    after = render(pipe)
    assert np.abs(with_lora - baseline).max() > 0.01
    np.testing.assert_allclose(at_zero, baseline, atol=1e-5)
    np.testing.assert_allclose(after, baseline, atol=1e-5)


def test_lora_is_read_once_and_switching_keeps_the_unet(pipe, lora_files, monkeypatch):
    style, other = lora_files
    reads = []
    real_read = lora_module.read_state_dict
    monkeypatch.setattr(lora_module, "read_state_dict", lambda path: reads.append(path.name) or real_read(path))
    unet, text_encoder = pipe.unet, pipe.text_encoder
    apply_loras(pipe, [(style, 1.0)])
    first = render(pipe)
    apply_loras(pipe, [(other, 1.0)])
    second = render(pipe)
    apply_loras(pipe, [(style, 1.0)])
    again = render(pipe)
    assert pipe.unet is unet and pipe.text_encoder is text_encoder
    assert reads.count("style.safetensors") <= 1 and reads.count("other.safetensors") <= 1
    assert np.abs(first - second).max() > 0.01
    np.testing.assert_allclose(first, again, atol=1e-5)


def test_two_loras_at_once_differ_from_either_alone(pipe, lora_files):
    style, other = lora_files
    apply_loras(pipe, [(style, 1.0)])
    alone = render(pipe)
    apply_loras(pipe, [(style, 1.0), (other, 0.8)])
    both = render(pipe)
    assert np.abs(both - alone).max() > 0.01
    assert set(pipe.get_active_adapters()) == {lora_module.adapter_name(style), lora_module.adapter_name(other)}


def test_least_recently_used_adapters_are_dropped(pipe, lora_files, monkeypatch):
    style, other = lora_files
    monkeypatch.setattr(lora_module, "MAX_ADAPTERS", 1)
    apply_loras(pipe, [(style, 1.0)])
    apply_loras(pipe, [(other, 1.0)])
    loaded = {n for names in pipe.get_list_adapters().values() for n in names}
    assert loaded == {lora_module.adapter_name(other)}


def test_missing_or_foreign_lora_fails_clearly(pipe, tmp_path):
    with pytest.raises(ModelError, match="'gone.safetensors' not found"):
        apply_loras(pipe, [(tmp_path / "gone.safetensors", 1.0)])
    # A LoRA made for a wider model (SD 1.5's 320 channels) does not fit the tiny checkpoint.
    wrong = {
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight": torch.ones(4, 320),
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_up.weight": torch.ones(320, 4),
    }
    path = ta._save_safetensors(tmp_path / "wide.safetensors", wrong)
    with pytest.raises(ModelError, match="'wide.safetensors' does not fit this checkpoint"):
        apply_loras(pipe, [(path, 1.0)])
    key = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
    loha = ta._save_safetensors(
        tmp_path / "loha.safetensors", {f"{key}.hada_w1_a": torch.ones(32, 4), f"{key}.hada_w1_b": torch.ones(4, 32)}
    )
    with pytest.raises(ModelError, match="'loha.safetensors' is a LyCORIS LoHa file"):
        apply_loras(pipe, [(loha, 1.0)])
    apply_loras(pipe, [])
    assert render(pipe).shape == (32, 32, 3)  # the pipeline still works after the refusals


def test_kohya_sdxl_lora_changes_both_text_encoders_and_the_image(tmp_path):
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline(**tm.tiny_sdxl_components())
    path = ta.write_kohya_sdxl_lora(tmp_path / "xl_style.safetensors")

    def run():
        embeds = encode_prompts(pipe, "a photo of a cat", "", 1, [])
        out = pipe(
            **embeds.as_kwargs(),
            num_inference_steps=2,
            height=64,
            width=64,
            output_type="np",
            generator=torch.Generator().manual_seed(7),
        )
        return embeds, out.images[0]

    plain_embeds, plain = run()
    apply_loras(pipe, [(path, 1.0)])
    lora_embeds, with_lora = run()
    first = tm.TEXT_HIDDEN_SIZE
    assert not torch.allclose(plain_embeds.prompt_embeds[..., :first], lora_embeds.prompt_embeds[..., :first])
    assert not torch.allclose(plain_embeds.prompt_embeds[..., first:], lora_embeds.prompt_embeds[..., first:])
    assert np.abs(with_lora - plain).max() > 0.01
    adapters = pipe.get_list_adapters()
    assert set(adapters) == {"unet", "text_encoder", "text_encoder_2"}


def test_diffusers_format_lora_gives_the_same_image_as_its_kohya_original(pipe, lora_files, tmp_path):
    from safetensors import safe_open

    kohya, _ = lora_files
    peft_file = ta.write_diffusers_lora(tmp_path / "style_diffusers.safetensors", seed=5)
    with safe_open(str(peft_file), "pt") as f:
        assert any(k.startswith("unet.") and "lora_A" in k for k in f.keys())
    apply_loras(pipe, [(kohya, 1.0)])
    from_kohya = render(pipe)
    apply_loras(pipe, [(peft_file, 1.0)])
    from_diffusers = render(pipe)
    np.testing.assert_allclose(from_diffusers, from_kohya, atol=1e-5)
