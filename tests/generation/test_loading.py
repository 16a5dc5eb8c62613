"""Offline loading of user-uploaded files: detection from shapes, exact weights, refused pickles."""

from __future__ import annotations

import hashlib
import pickle

import pytest
import torch

from openesd.generation import GenerationError
from openesd.generation.models import loading
from openesd.generation.models._tokenizer import clip_vocab_and_merges
from tests.support import tiny_models as tm


def same_weights(expected, loaded) -> list[str]:
    a, b = expected.state_dict(), loaded.state_dict()
    return [k for k in a if k not in b or not torch.equal(a[k], b[k].reshape(a[k].shape))]


def test_fixture_uses_the_real_a1111_key_layout(sd15_checkpoint, sdxl_checkpoint):
    sd15 = loading.read_state_dict(sd15_checkpoint)
    assert "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight" in sd15
    assert "model.diffusion_model.input_blocks.0.0.weight" in sd15
    assert "first_stage_model.encoder.mid.attn_1.q.weight" in sd15
    xl = loading.read_state_dict(sdxl_checkpoint)
    assert "conditioner.embedders.0.transformer.text_model.final_layer_norm.weight" in xl
    assert "conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight" in xl
    assert "model.diffusion_model.label_emb.0.0.weight" in xl


def test_same_fixture_call_gives_the_same_bytes(tmp_path, vae_file):
    again = tm.write_tiny_vae(tmp_path / "vae.safetensors")
    assert hashlib.sha256(again.read_bytes()).digest() == hashlib.sha256(vae_file.read_bytes()).digest()


@pytest.mark.parametrize(
    ("fixture", "family", "components"),
    [
        ("sd15_checkpoint", "sd1", tm.tiny_sd15_components),
        ("sdxl_checkpoint", "sdxl", tm.tiny_sdxl_components),
        ("sdxl_refiner_checkpoint", "sdxl_refiner", tm.tiny_sdxl_refiner_components),
    ],
)
def test_single_file_loads_with_exactly_the_saved_weights(request, fixture, family, components):
    path = request.getfixturevalue(fixture)
    model = loading.load_checkpoint(path, "cpu", torch.float32)
    assert model.family == family and not model.inpainting
    expected = components()
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        if expected.get(name) is not None:
            assert same_weights(expected[name], getattr(model.pipe, name)) == [], name


def test_detection_reads_the_architecture_from_shapes(sdxl_checkpoint, sd15_inpaint_checkpoint):
    xl = loading.detect_architecture(loading.read_state_dict(sdxl_checkpoint), sdxl_checkpoint)
    unet = xl.configs["unet"]
    assert unet["block_out_channels"] == list(tm.SDXL_UNET_CHANNELS)
    assert unet["transformer_layers_per_block"] == list(tm.SDXL_TRANSFORMER_DEPTH)
    assert unet["cross_attention_dim"] == tm.SDXL_CROSS_ATTENTION_DIM
    assert unet["addition_time_embed_dim"] == tm.SDXL_TIME_EMBED_DIM
    assert xl.configs["text_encoder_2"]["hidden_size"] == tm.TEXT2_HIDDEN_SIZE
    inpaint = loading.detect_architecture(loading.read_state_dict(sd15_inpaint_checkpoint), sd15_inpaint_checkpoint)
    assert inpaint.inpainting and inpaint.configs["unet"]["in_channels"] == 9


def test_ckpt_with_only_tensors_loads(tmp_path, sd15_checkpoint):
    state = loading.read_state_dict(sd15_checkpoint)
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": state, "global_step": 10}, path)
    assert loading.load_checkpoint(path, "cpu", torch.float32).family == "sd1"


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_ckpt_with_a_pickled_object_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.ckpt"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": {"w": torch.zeros(1)}, "hook": Payload()}, f)
    with pytest.raises(GenerationError, match="'evil.ckpt' was refused: it holds objects other than tensors"):
        loading.read_state_dict(path)
    assert "must never run" not in capsys.readouterr().out


def test_unknown_file_kinds_are_clear_errors(tmp_path):
    odd = tmp_path / "model.gguf"
    odd.write_bytes(b"x")
    with pytest.raises(GenerationError, match="unknown format '.gguf'"):
        loading.read_state_dict(odd)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not safetensors")
    with pytest.raises(GenerationError, match="not a readable safetensors file"):
        loading.read_state_dict(broken)
    from safetensors.torch import save_file

    save_file({"lora_unet_down.weight": torch.zeros(2)}, str(tmp_path / "lora.safetensors"))
    with pytest.raises(GenerationError, match="not an SD 1.x, SD 2.x or SDXL checkpoint"):
        loading.load_checkpoint(tmp_path / "lora.safetensors", "cpu", torch.float32)


def test_diffusers_folder_loads(tmp_path):
    from diffusers import StableDiffusionPipeline

    StableDiffusionPipeline(**tm.tiny_sd15_components()).save_pretrained(tmp_path / "tiny-diffusers")
    model = loading.load_checkpoint(tmp_path / "tiny-diffusers", "cpu", torch.float32)
    assert model.family == "sd1" and model.pipe.unet.config.block_out_channels == list(tm.SD15_UNET_CHANNELS)


def test_shipped_tokenizer_is_clips():
    vocab, merges = clip_vocab_and_merges()
    assert len(vocab) == 49408 and len(merges) == 48894
    tokenizer = tm.tiny_tokenizer()
    assert tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert tm.tiny_tokenizer("!").pad_token_id == 0


def test_sd2_single_file_loads_as_v_prediction_without_its_last_text_layer(tmp_path):
    path = tm.write_tiny_sd2_checkpoint(tmp_path / "tiny-sd2.safetensors")
    model = loading.load_checkpoint(path, "cpu", torch.float32)
    assert model.family == "sd2"
    assert model.pipe.scheduler.config.prediction_type == "v_prediction"
    assert model.pipe.text_encoder.config.num_hidden_layers == tm.SD2_TEXT_LAYERS - 1
    expected = tm.tiny_sd2_components()
    assert same_weights(expected["unet"], model.pipe.unet) == []
    loaded = model.pipe.text_encoder.state_dict()
    for key, value in expected["text_encoder"].state_dict().items():
        if f"layers.{tm.SD2_TEXT_LAYERS - 1}." not in key:
            assert torch.equal(value, loaded[key]), key
    # A1111's sidecar config decides the parameterization when present.
    sidecar = tmp_path / "tiny-sd2.yaml"
    sidecar.write_text("model:\n  params:\n    linear_start: 0.00085\n")
    assert loading.load_checkpoint(path, "cpu", torch.float32).pipe.scheduler.config.prediction_type == "epsilon"
    sidecar.write_text('model:\n  params:\n    parameterization: "v"\n')
    state = loading.read_state_dict(path)
    assert loading.detect_architecture(state, path).prediction_type == "v_prediction"
