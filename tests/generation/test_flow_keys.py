"""Which FLUX.1 / SD 3 / text encoder file a set of keys is, and BFL keys read at the real model's widths."""

from __future__ import annotations

import pytest

from openesd.modelfiles.keys import FAMILY_NAMES, checkpoint_family, kind_of, text_encoder_family

FLUX = ["double_blocks.0.img_attn.norm.key_norm.scale", "single_blocks.0.linear1.weight", "img_in.weight"]


@pytest.mark.parametrize(
    ("keys", "kind", "family"),
    [
        (["text_model.embeddings.token_embedding.weight", "text_projection.weight"], "text_encoder", "clip"),
        (["shared.weight", "encoder.block.0.layer.0.SelfAttention.q.weight"], "text_encoder", "t5"),
        (["text_encoders.t5xxl.transformer.encoder.block.0.layer.0.SelfAttention.q.weight"], "text_encoder", "t5"),
        # the SDXL checkpoint's CLIP-L is under its own prefix: still a checkpoint
        (
            [
                "model.diffusion_model.input_blocks.0.0.weight",
                "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight",
            ],
            "checkpoint",
            None,
        ),
        (["encoder.conv_in.weight", "decoder.conv_out.weight"], "vae", None),
    ],
)
def test_text_encoder_files_are_their_own_kind(keys, kind, family):
    assert kind_of(keys) == kind
    if family:
        assert text_encoder_family(keys) == family


@pytest.mark.parametrize(
    ("extra", "family"),
    [
        ([], "flux"),
        (["model.diffusion_model." + k for k in FLUX] + ["text_encoders.clip_l.transformer.text_model.x"], "flux"),
        (["distilled_guidance_layer.in_proj.weight"], "chroma"),
        (["double_stream_modulation_img.lin.weight"], "flux2"),
    ],
)
def test_flux_like_keys_tell_flux_from_chroma_and_flux2(extra, family):
    assert checkpoint_family(FLUX + extra) == family


@pytest.mark.parametrize(
    ("keys", "name"),
    [
        (["cond_seq_linear.weight", "double_layers.0.attn.w1q.weight"], "AuraFlow"),
        (["double_stream_blocks.0.block.attn1.to_q.weight"], "HiDream-I1"),
        (["cap_embedder.0.weight", "noise_refiner.0.attention.qkv.weight"], "Lumina 2"),
        (["transformer_blocks.0.img_mod.1.weight", "txt_norm.weight"], "Qwen-Image"),
    ],
)
def test_other_diffusion_transformers_are_named(keys, name):
    assert FAMILY_NAMES[checkpoint_family(keys)] == name


def test_bfl_keys_convert_like_diffusers_at_the_real_width():
    """diffusers' own FLUX converter (3072 wide) and ours give the same keys and shapes for FLUX.1 dev's layout
    (the loader's one converter, `quant._bfl.convert_flux`; its values are checked in tests/generation/quant)."""
    torch = pytest.importorskip("torch")
    from diffusers.loaders.single_file_utils import convert_flux_transformer_checkpoint_to_diffusers

    from openesd.generation.quant._bfl import convert_flux

    inner, mlp, context, pooled = 3072, 12288, 4096, 768
    shapes = {
        "img_in": (inner, 64), "txt_in": (inner, context), "final_layer.linear": (64, inner),
        "final_layer.adaLN_modulation.1": (2 * inner, inner),
        "double_blocks.0.img_mod.lin": (6 * inner, inner), "double_blocks.0.txt_mod.lin": (6 * inner, inner),
        "double_blocks.0.img_attn.qkv": (3 * inner, inner), "double_blocks.0.txt_attn.qkv": (3 * inner, inner),
        "double_blocks.0.img_attn.proj": (inner, inner), "double_blocks.0.txt_attn.proj": (inner, inner),
        "double_blocks.0.img_mlp.0": (mlp, inner), "double_blocks.0.img_mlp.2": (inner, mlp),
        "double_blocks.0.txt_mlp.0": (mlp, inner), "double_blocks.0.txt_mlp.2": (inner, mlp),
        "single_blocks.0.modulation.lin": (3 * inner, inner), "single_blocks.0.linear1": (3 * inner + mlp, inner),
        "single_blocks.0.linear2": (inner, inner + mlp),
    }  # fmt: skip
    for embed, width in (("time_in", 256), ("vector_in", pooled), ("guidance_in", 256)):
        shapes[f"{embed}.in_layer"] = (inner, width)
        shapes[f"{embed}.out_layer"] = (inner, inner)
    state = {}
    for name, shape in shapes.items():
        state[f"{name}.weight"] = torch.empty(shape, device="meta")
        state[f"{name}.bias"] = torch.empty(shape[0], device="meta")
    for norm in ("img_attn.norm", "txt_attn.norm"):
        for which in ("query_norm", "key_norm"):
            state[f"double_blocks.0.{norm}.{which}.scale"] = torch.empty(128, device="meta")
    for which in ("query_norm", "key_norm"):
        state[f"single_blocks.0.norm.{which}.scale"] = torch.empty(128, device="meta")
    ours = convert_flux(dict(state))
    theirs = convert_flux_transformer_checkpoint_to_diffusers(dict(state))
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in theirs.items()}
