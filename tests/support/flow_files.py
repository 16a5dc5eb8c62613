"""Tiny FLUX.1 and SD 3.5 single files in the key layouts users upload, built from `tiny_flow`'s models.

The key renames here are written out from the reference layouts (BFL's `flux` package, Stability's
`sd3` MMDiT, ComfyUI's `text_encoders.*` prefixes), independently of the worker's loader, so a
loader that reads them back wrong gives a different picture. Each writer returns the diffusers
model(s) the file was built from, so tests can compare against the in-memory pipeline.

Layouts:
- FLUX.1 `bfl`: the transformer only, keys as in `flux1-dev.safetensors` (`double_blocks.0.img_attn.qkv.weight`).
- FLUX.1 `all_in_one`: Forge/ComfyUI's `model.diffusion_model.*` + `text_encoders.clip_l.transformer.*`
  + `text_encoders.t5xxl.transformer.*` + `vae.*` (LDM VAE keys).
- SD 3.5: Stability's `model.diffusion_model.joint_blocks.*` + `first_stage_model.*`, with or without
  `text_encoders.{clip_l,clip_g,t5xxl}.transformer.*`.
- Text encoders as separate files: transformers' own keys (`text_model.*`, `encoder.block.*`), as
  `clip_l.safetensors`, `clip_g.safetensors`, `t5xxl_fp16.safetensors` are shared.
- VAE as a separate file: LDM keys with no prefix (`ae.safetensors`, `sd3_vae.safetensors`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support import tiny_flow


def _cat(*tensors: Any) -> Any:
    import torch

    return torch.cat(tensors, dim=0).contiguous()


def _swap_halves(tensor: Any) -> Any:
    """diffusers' AdaLayerNormContinuous is (scale, shift); the reference layouts are (shift, scale)."""
    first, second = tensor.chunk(2, dim=0)
    return _cat(second, first)


def _linear(out: dict, state: dict, new: str, old: str, bias: bool = True) -> None:
    out[f"{new}.weight"] = state[f"{old}.weight"]
    if bias:
        out[f"{new}.bias"] = state[f"{old}.bias"]


def _fused(out: dict, state: dict, new: str, olds: list[str]) -> None:
    out[f"{new}.weight"] = _cat(*(state[f"{o}.weight"] for o in olds))
    out[f"{new}.bias"] = _cat(*(state[f"{o}.bias"] for o in olds))


def flux_to_bfl(transformer: Any) -> dict[str, Any]:
    """diffusers FluxTransformer2DModel -> the BFL `flux` reference keys."""
    state = {k: v.detach() for k, v in transformer.state_dict().items()}
    cfg = transformer.config
    out: dict[str, Any] = {}
    embed = "time_text_embed."
    for new, old in (
        ("time_in", "timestep_embedder"),
        ("vector_in", "text_embedder"),
        ("guidance_in", "guidance_embedder"),
    ):
        if f"{embed}{old}.linear_1.weight" in state:
            _linear(out, state, f"{new}.in_layer", f"{embed}{old}.linear_1")
            _linear(out, state, f"{new}.out_layer", f"{embed}{old}.linear_2")
    _linear(out, state, "txt_in", "context_embedder")
    _linear(out, state, "img_in", "x_embedder")
    for i in range(cfg.num_layers):
        d, b = f"transformer_blocks.{i}.", f"double_blocks.{i}."
        _linear(out, state, f"{b}img_mod.lin", f"{d}norm1.linear")
        _linear(out, state, f"{b}txt_mod.lin", f"{d}norm1_context.linear")
        _fused(out, state, f"{b}img_attn.qkv", [f"{d}attn.to_q", f"{d}attn.to_k", f"{d}attn.to_v"])
        _fused(out, state, f"{b}txt_attn.qkv", [f"{d}attn.add_q_proj", f"{d}attn.add_k_proj", f"{d}attn.add_v_proj"])
        out[f"{b}img_attn.norm.query_norm.scale"] = state[f"{d}attn.norm_q.weight"]
        out[f"{b}img_attn.norm.key_norm.scale"] = state[f"{d}attn.norm_k.weight"]
        out[f"{b}txt_attn.norm.query_norm.scale"] = state[f"{d}attn.norm_added_q.weight"]
        out[f"{b}txt_attn.norm.key_norm.scale"] = state[f"{d}attn.norm_added_k.weight"]
        _linear(out, state, f"{b}img_attn.proj", f"{d}attn.to_out.0")
        _linear(out, state, f"{b}txt_attn.proj", f"{d}attn.to_add_out")
        _linear(out, state, f"{b}img_mlp.0", f"{d}ff.net.0.proj")
        _linear(out, state, f"{b}img_mlp.2", f"{d}ff.net.2")
        _linear(out, state, f"{b}txt_mlp.0", f"{d}ff_context.net.0.proj")
        _linear(out, state, f"{b}txt_mlp.2", f"{d}ff_context.net.2")
    for i in range(cfg.num_single_layers):
        d, b = f"single_transformer_blocks.{i}.", f"single_blocks.{i}."
        _linear(out, state, f"{b}modulation.lin", f"{d}norm.linear")
        _fused(out, state, f"{b}linear1", [f"{d}attn.to_q", f"{d}attn.to_k", f"{d}attn.to_v", f"{d}proj_mlp"])
        _linear(out, state, f"{b}linear2", f"{d}proj_out")
        out[f"{b}norm.query_norm.scale"] = state[f"{d}attn.norm_q.weight"]
        out[f"{b}norm.key_norm.scale"] = state[f"{d}attn.norm_k.weight"]
    _linear(out, state, "final_layer.linear", "proj_out")
    out["final_layer.adaLN_modulation.1.weight"] = _swap_halves(state["norm_out.linear.weight"])
    out["final_layer.adaLN_modulation.1.bias"] = _swap_halves(state["norm_out.linear.bias"])
    return out


def sd3_to_mmdit(transformer: Any) -> dict[str, Any]:
    """diffusers SD3Transformer2DModel -> Stability's MMDiT keys (without `model.diffusion_model.`)."""
    state = {k: v.detach() for k, v in transformer.state_dict().items()}
    cfg = transformer.config
    out: dict[str, Any] = {"pos_embed": state["pos_embed.pos_embed"]}
    _linear(out, state, "x_embedder.proj", "pos_embed.proj")
    _linear(out, state, "t_embedder.mlp.0", "time_text_embed.timestep_embedder.linear_1")
    _linear(out, state, "t_embedder.mlp.2", "time_text_embed.timestep_embedder.linear_2")
    _linear(out, state, "y_embedder.mlp.0", "time_text_embed.text_embedder.linear_1")
    _linear(out, state, "y_embedder.mlp.2", "time_text_embed.text_embedder.linear_2")
    _linear(out, state, "context_embedder", "context_embedder")
    last = cfg.num_layers - 1
    for i in range(cfg.num_layers):
        d, x, c = f"transformer_blocks.{i}.", f"joint_blocks.{i}.x_block.", f"joint_blocks.{i}.context_block."
        _fused(out, state, f"{x}attn.qkv", [f"{d}attn.to_q", f"{d}attn.to_k", f"{d}attn.to_v"])
        _fused(out, state, f"{c}attn.qkv", [f"{d}attn.add_q_proj", f"{d}attn.add_k_proj", f"{d}attn.add_v_proj"])
        if cfg.qk_norm:
            out[f"{x}attn.ln_q.weight"] = state[f"{d}attn.norm_q.weight"]
            out[f"{x}attn.ln_k.weight"] = state[f"{d}attn.norm_k.weight"]
            out[f"{c}attn.ln_q.weight"] = state[f"{d}attn.norm_added_q.weight"]
            out[f"{c}attn.ln_k.weight"] = state[f"{d}attn.norm_added_k.weight"]
        _linear(out, state, f"{x}attn.proj", f"{d}attn.to_out.0")
        if f"{d}attn2.to_q.weight" in state:
            _fused(out, state, f"{x}attn2.qkv", [f"{d}attn2.to_q", f"{d}attn2.to_k", f"{d}attn2.to_v"])
            if cfg.qk_norm:
                out[f"{x}attn2.ln_q.weight"] = state[f"{d}attn2.norm_q.weight"]
                out[f"{x}attn2.ln_k.weight"] = state[f"{d}attn2.norm_k.weight"]
            _linear(out, state, f"{x}attn2.proj", f"{d}attn2.to_out.0")
        _linear(out, state, f"{x}adaLN_modulation.1", f"{d}norm1.linear")
        _linear(out, state, f"{x}mlp.fc1", f"{d}ff.net.0.proj")
        _linear(out, state, f"{x}mlp.fc2", f"{d}ff.net.2")
        if i == last:  # the last block only conditions the image stream: its context norm is (shift, scale)
            out[f"{c}adaLN_modulation.1.weight"] = _swap_halves(state[f"{d}norm1_context.linear.weight"])
            out[f"{c}adaLN_modulation.1.bias"] = _swap_halves(state[f"{d}norm1_context.linear.bias"])
            continue
        _linear(out, state, f"{c}attn.proj", f"{d}attn.to_add_out")
        _linear(out, state, f"{c}adaLN_modulation.1", f"{d}norm1_context.linear")
        _linear(out, state, f"{c}mlp.fc1", f"{d}ff_context.net.0.proj")
        _linear(out, state, f"{c}mlp.fc2", f"{d}ff_context.net.2")
    _linear(out, state, "final_layer.linear", "proj_out")
    out["final_layer.adaLN_modulation.1.weight"] = _swap_halves(state["norm_out.linear.weight"])
    out["final_layer.adaLN_modulation.1.bias"] = _swap_halves(state["norm_out.linear.bias"])
    return out


def clip_keys(model: Any, prefix: str = "") -> dict[str, Any]:
    """A transformers CLIP text model's keys as shared files have them (`text_model.*`, `text_projection.weight`)."""
    out = {}
    for key, tensor in model.state_dict().items():
        name = key if key.startswith(("text_model.", "text_projection.")) else f"text_model.{key}"
        out[prefix + name] = tensor.detach()
    return out


def t5_keys(model: Any, prefix: str = "") -> dict[str, Any]:
    """A T5EncoderModel's keys (`shared.weight`, `encoder.block.*`), without the tied `embed_tokens` copy."""
    state = model.state_dict()
    return {prefix + k: v.detach() for k, v in state.items() if k != "encoder.embed_tokens.weight"}


def vae_keys(vae: Any, prefix: str = "") -> dict[str, Any]:
    from openesd.modeltools.export import vae_to_ldm

    return vae_to_ldm(vae.state_dict(), dict(vae.config), prefix=prefix)


def _save(state: dict[str, Any], path: Path) -> Path:
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in state.items()}, str(path))
    return path


def write_tiny_flux_checkpoint(path: Path, layout: str = "bfl", guidance: bool = True) -> dict[str, Any]:
    """FLUX.1 dev (`guidance=True`) or schnell as a `bfl` transformer file or an `all_in_one` file.

    Returns the full tiny pipeline components the file was built from (the text encoders and VAE
    of a `bfl` file are the ones `write_tiny_clip_l`, `write_tiny_t5`, `write_tiny_flow_vae` write)."""
    components = tiny_flow.tiny_flux_components(guidance)
    if layout == "bfl":
        _save(flux_to_bfl(components["transformer"]), path)
    elif layout == "all_in_one":
        state = {f"model.diffusion_model.{k}": v for k, v in flux_to_bfl(components["transformer"]).items()}
        state.update(clip_keys(components["text_encoder"], "text_encoders.clip_l.transformer."))
        state.update(t5_keys(components["text_encoder_2"], "text_encoders.t5xxl.transformer."))
        state.update(vae_keys(components["vae"], "vae."))
        _save(state, path)
    else:
        raise ValueError(f"layout {layout!r}: bfl or all_in_one")
    return components


def write_tiny_sd35_checkpoint(path: Path, with_text_encoders: bool = True) -> dict[str, Any]:
    """SD 3.5 (Medium-like: dual attention, qk norm) as Stability's single file; returns the components."""
    components = tiny_flow.tiny_sd3_components()
    state = {f"model.diffusion_model.{k}": v for k, v in sd3_to_mmdit(components["transformer"]).items()}
    state.update(vae_keys(components["vae"], "first_stage_model."))
    if with_text_encoders:
        state.update(clip_keys(components["text_encoder"], "text_encoders.clip_l.transformer."))
        state.update(clip_keys(components["text_encoder_2"], "text_encoders.clip_g.transformer."))
        state.update(t5_keys(components["text_encoder_3"], "text_encoders.t5xxl.transformer."))
    _save(state, path)
    return components


def write_tiny_clip_l(path: Path) -> Any:
    """`clip_l.safetensors`: CLIP-L with its projection (FLUX uses the pooled output, SD 3 the projection)."""
    model = tiny_flow.tiny_clip_l_with_projection()
    _save(clip_keys(model), path)
    return model


def write_tiny_clip_g(path: Path) -> Any:
    """`clip_g.safetensors`: SD 3's CLIP-G (OpenCLIP bigG) with its projection."""
    model = tiny_flow.tiny_clip_g()
    _save(clip_keys(model), path)
    return model


def write_tiny_t5(path: Path) -> Any:
    """`t5xxl_fp16.safetensors`: the T5 v1.1 encoder."""
    model = tiny_flow.tiny_t5()
    _save(t5_keys(model), path)
    return model


def write_tiny_flow_vae(path: Path, family: str = "flux") -> Any:
    """`ae.safetensors` (FLUX) / `sd3_vae.safetensors`: the 16-channel VAE, LDM keys, no prefix."""
    vae = tiny_flow.tiny_flow_vae(family)
    _save(vae_keys(vae), path)
    return vae
