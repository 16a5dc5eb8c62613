"""BFL's FLUX.1 transformer keys -> diffusers' FluxTransformer2DModel keys.

The mapping is diffusers' `convert_flux_transformer_checkpoint_to_diffusers`, except that the fused
single-block projection is split by its real widths (diffusers' converter assumes the 3072-wide model).
"""

from __future__ import annotations

from typing import Any

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
    "img_attn.proj": "attn.to_out.0",
    "txt_attn.proj": "attn.to_add_out",
    "img_mlp.0": "ff.net.0.proj",
    "img_mlp.2": "ff.net.2",
    "txt_mlp.0": "ff_context.net.0.proj",
    "txt_mlp.2": "ff_context.net.2",
}
_DOUBLE_NORMS = {
    "img_attn.norm.query_norm.scale": "attn.norm_q.weight",
    "img_attn.norm.key_norm.scale": "attn.norm_k.weight",
    "txt_attn.norm.query_norm.scale": "attn.norm_added_q.weight",
    "txt_attn.norm.key_norm.scale": "attn.norm_added_k.weight",
}
_DOUBLE_QKV = {
    "img_attn.qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
    "txt_attn.qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"),
}
_SINGLE = {"modulation.lin": "norm.linear", "linear2": "proj_out"}
_SINGLE_NORMS = {"norm.query_norm.scale": "attn.norm_q.weight", "norm.key_norm.scale": "attn.norm_k.weight"}


def bfl_to_diffusers(state: dict[str, Any], num_layers: int, num_single_layers: int) -> dict[str, Any]:
    """`state` without any `model.diffusion_model.` prefix; returns a new dict (the input is not changed)."""
    out: dict[str, Any] = {}
    for old, new in _TOP.items():
        _linear(out, state, old, new)
    for i in range(num_layers):
        b, d = f"double_blocks.{i}.", f"transformer_blocks.{i}."
        for old, new in _DOUBLE.items():
            _linear(out, state, b + old, d + new)
        for old, new in _DOUBLE_NORMS.items():
            out[d + new] = state[b + old]
        for old, news in _DOUBLE_QKV.items():
            _split(out, state, b + old, [d + n for n in news], None)
    for i in range(num_single_layers):
        b, d = f"single_blocks.{i}.", f"single_transformer_blocks.{i}."
        for old, new in _SINGLE.items():
            _linear(out, state, b + old, d + new)
        for old, new in _SINGLE_NORMS.items():
            out[d + new] = state[b + old]
        inner = state[f"{b}linear2.weight"].shape[0]
        names = [f"{d}attn.to_q", f"{d}attn.to_k", f"{d}attn.to_v", f"{d}proj_mlp"]
        mlp = state[f"{b}linear1.weight"].shape[0] - 3 * inner
        _split(out, state, f"{b}linear1", names, [inner, inner, inner, mlp])
    for suffix in ("weight", "bias"):  # BFL's final norm is (shift, scale); diffusers' is (scale, shift)
        shift, scale = state[f"final_layer.adaLN_modulation.1.{suffix}"].chunk(2, dim=0)
        out[f"norm_out.linear.{suffix}"] = _cat(scale, shift)
    return out


def _linear(out: dict[str, Any], state: dict[str, Any], old: str, new: str) -> None:
    for suffix in ("weight", "bias"):
        if f"{old}.{suffix}" in state:
            out[f"{new}.{suffix}"] = state[f"{old}.{suffix}"]


def _split(out: dict[str, Any], state: dict[str, Any], old: str, news: list[str], sizes: list[int] | None) -> None:
    for suffix in ("weight", "bias"):
        tensor = state[f"{old}.{suffix}"]
        pieces = tensor.chunk(len(news), dim=0) if sizes is None else tensor.split(sizes, dim=0)
        for new, piece in zip(news, pieces):
            out[f"{new}.{suffix}"] = piece.contiguous()


def _cat(*tensors: Any) -> Any:
    import torch

    return torch.cat(tensors, dim=0)
