"""FLUX.1 transformer weights from Black Forest Labs' key layout to diffusers' FluxTransformer2DModel.

diffusers' own converter splits the fused projections at FLUX.1's real width (3072), so it cannot read a
narrower model; this one takes every width from the tensors' first dimension. It only slices and joins
rows, so it works alike on plain tensors, fp8 tensors and GGUF-quantised rows (whose blocks run along a
row), and on one-column stand-ins for per-tensor scales.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PREFIX = "model.diffusion_model."

# BFL module -> diffusers module (their .weight/.bias, or the norms' .scale -> .weight).
_TOP = {
    "time_in.in_layer": "time_text_embed.timestep_embedder.linear_1",
    "time_in.out_layer": "time_text_embed.timestep_embedder.linear_2",
    "vector_in.in_layer": "time_text_embed.text_embedder.linear_1",
    "vector_in.out_layer": "time_text_embed.text_embedder.linear_2",
    "guidance_in.in_layer": "time_text_embed.guidance_embedder.linear_1",
    "guidance_in.out_layer": "time_text_embed.guidance_embedder.linear_2",
    "txt_in": "context_embedder",
    "img_in": "x_embedder",
    "final_layer.linear": "proj_out",
}
_DOUBLE = {
    "img_mod.lin": "norm1.linear",
    "txt_mod.lin": "norm1_context.linear",
    "img_attn.norm.query_norm": "attn.norm_q",
    "img_attn.norm.key_norm": "attn.norm_k",
    "txt_attn.norm.query_norm": "attn.norm_added_q",
    "txt_attn.norm.key_norm": "attn.norm_added_k",
    "img_mlp.0": "ff.net.0.proj",
    "img_mlp.2": "ff.net.2",
    "txt_mlp.0": "ff_context.net.0.proj",
    "txt_mlp.2": "ff_context.net.2",
    "img_attn.proj": "attn.to_out.0",
    "txt_attn.proj": "attn.to_add_out",
}
_SINGLE = {
    "modulation.lin": "norm.linear",
    "norm.query_norm": "attn.norm_q",
    "norm.key_norm": "attn.norm_k",
    "linear2": "proj_out",
}
_SUFFIX = {"weight": "weight", "bias": "bias", "scale": "weight"}


def convert_flux(state: Mapping[str, Any]) -> dict[str, Any]:
    """diffusers keys for a BFL state dict (with or without the `model.diffusion_model.` prefix).

    Raises KeyError naming a tensor the layout needs, ValueError naming the first tensor it cannot place."""
    import torch

    src = {k.removeprefix(PREFIX): v for k, v in state.items()}
    out: dict[str, Any] = {}
    inner = src["img_in.weight"].shape[0]
    _rename(src, out, _TOP, "", "")
    for i in _blocks(src, "double_blocks"):
        old, new = f"double_blocks.{i}.", f"transformer_blocks.{i}."
        _rename(src, out, _DOUBLE, old, new)
        _split(src, out, old + "img_attn.qkv", [new + "attn.to_q", new + "attn.to_k", new + "attn.to_v"], inner)
        add = ["attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"]
        _split(src, out, old + "txt_attn.qkv", [new + name for name in add], inner)
    for i in _blocks(src, "single_blocks"):
        old, new = f"single_blocks.{i}.", f"single_transformer_blocks.{i}."
        _rename(src, out, _SINGLE, old, new)
        parts = ["attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"]
        _split(src, out, old + "linear1", [new + name for name in parts], inner)
    for suffix in ("weight", "bias"):  # BFL's final modulation is (shift, scale); diffusers' is (scale, shift)
        shift, scale = src.pop(f"final_layer.adaLN_modulation.1.{suffix}").chunk(2, dim=0)
        out[f"norm_out.linear.{suffix}"] = torch.cat([scale, shift], dim=0)
    if src:
        raise ValueError(f"tensor {sorted(src)[0]!r} is not part of a FLUX.1 transformer")
    return out


def _blocks(src: Mapping[str, Any], name: str) -> list[int]:
    return sorted({int(k.split(".")[1]) for k in src if k.startswith(name + ".")})


def _rename(src: dict[str, Any], out: dict[str, Any], table: Mapping[str, str], old: str, new: str) -> None:
    for bfl, diffusers in table.items():
        for suffix, target in _SUFFIX.items():
            key = f"{old}{bfl}.{suffix}"
            if key in src:
                out[f"{new}{diffusers}.{target}"] = src.pop(key)


def _split(src: dict[str, Any], out: dict[str, Any], fused: str, names: list[str], inner: int) -> None:
    """q, k, v (and the single blocks' MLP input: the rows left) out of one fused projection."""
    for suffix in ("weight", "bias"):
        tensor = src.pop(f"{fused}.{suffix}")
        start = 0
        for n, name in enumerate(names):
            stop = tensor.shape[0] if n == len(names) - 1 else start + inner
            out[f"{name}.{suffix}"] = tensor[start:stop]
            start = stop
