"""Tiny LoRA files for the `tiny_flow` FLUX.1 and SD 3.5 pipelines, in the layouts users download.

One set of deltas (per original BFL/Stability module: down, up, alpha) is written in each layout:
kohya/A1111 (module names as kohya's sd-scripts derives them from the BFL/MMDiT modules,
`lora_unet_double_blocks_0_img_attn_qkv`), ComfyUI (`diffusion_model.double_blocks.0.img_attn.qkv.lora_A`),
diffusers/peft (`transformer.transformer_blocks.0.attn.to_q.lora_A`, fused projections split, alpha baked)
and XLabs (`double_blocks.0.processor.qkv_lora1.down`). The same deltas give the same image in every layout.

The table below says which diffusers modules each original module is; it is written from diffusers'
single-file conversion of the BFL and SD3 checkpoints, independently of the worker's converter.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.tiny_adapters import _save_safetensors

RANK = 4
ALPHA = 2.0  # != RANK: the layouts that bake alpha/rank must do so
_TEXT = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "mlp.fc1", "mlp.fc2")

# original module (`{i}`: block index) -> (diffusers modules, whether diffusers swaps its shift/scale halves)
FLUX_DOUBLE = {
    "img_attn.qkv": (("attn.to_q", "attn.to_k", "attn.to_v"), False),
    "img_attn.proj": (("attn.to_out.0",), False),
    "img_mlp.0": (("ff.net.0.proj",), False),
    "img_mlp.2": (("ff.net.2",), False),
    "img_mod.lin": (("norm1.linear",), False),
    "txt_attn.qkv": (("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"), False),
    "txt_attn.proj": (("attn.to_add_out",), False),
    "txt_mlp.0": (("ff_context.net.0.proj",), False),
    "txt_mlp.2": (("ff_context.net.2",), False),
    "txt_mod.lin": (("norm1_context.linear",), False),
}
FLUX_SINGLE = {
    "linear1": (("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"), False),
    "linear2": (("proj_out",), False),
    "modulation.lin": (("norm.linear",), False),
}
FLUX_OTHER = {"final_layer.adaLN_modulation.1": (("norm_out.linear",), True), "img_in": (("x_embedder",), False)}
SD3_JOINT = {
    "x_block.attn.qkv": (("attn.to_q", "attn.to_k", "attn.to_v"), False),
    "x_block.attn.proj": (("attn.to_out.0",), False),
    "x_block.attn2.qkv": (("attn2.to_q", "attn2.to_k", "attn2.to_v"), False),
    "x_block.attn2.proj": (("attn2.to_out.0",), False),
    "x_block.mlp.fc1": (("ff.net.0.proj",), False),
    "x_block.mlp.fc2": (("ff.net.2",), False),
    "x_block.adaLN_modulation.1": (("norm1.linear",), False),
    "context_block.attn.qkv": (("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"), False),
    "context_block.attn.proj": (("attn.to_add_out",), False),
    "context_block.mlp.fc1": (("ff_context.net.0.proj",), False),
    "context_block.mlp.fc2": (("ff_context.net.2",), False),
    "context_block.adaLN_modulation.1": (("norm1_context.linear",), False),  # swapped in the pre-only last block
}
SD3_OTHER = {
    "final_layer.adaLN_modulation.1": (("norm_out.linear",), True),
    "context_embedder": (("context_embedder",), False),
}
# kohya's text encoder prefixes: FLUX.1 CLIP-L `lora_te1`; SD 3.5 CLIP-L `lora_te1`, CLIP-G `lora_te2`.
TEXT_PREFIXES = {
    "flux": {"lora_te1": "text_encoder"},
    "sd3": {"lora_te1": "text_encoder", "lora_te2": "text_encoder_2"},
}
COMFY_TEXT = {"lora_te1": "text_encoders.clip_l.transformer.", "lora_te2": "text_encoders.clip_g.transformer."}


@dataclass
class Delta:
    """One original module's LoRA: its diffusers targets (component-qualified) and kohya's tensors."""

    targets: tuple[str, ...]
    widths: tuple[int, ...]  # each target's output width: how a fused up weight splits
    swap: bool
    down: Any
    up: Any
    alpha: float = ALPHA


def flow_lora_deltas(
    components: dict[str, Any], family: str, seed: int = 5, scale: float = 0.3, parts: str = "all"
) -> dict[str, Delta]:
    """Random deltas keyed by original module name (`double_blocks.0.img_attn.qkv`, `lora_te1:…`) for the
    modules the tiny model has. parts: "all", "transformer" (no text encoders) or "double_attn" (XLabs')."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    deltas: dict[str, Delta] = {}
    for name, (targets, swap) in _transformer_modules(components["transformer"], family).items():
        if parts == "double_attn" and not (name.startswith("double_blocks.") and "_attn." in name):
            continue
        deltas[name] = _delta(components, tuple(f"transformer.{t}" for t in targets), swap, generator, scale)
    if parts == "all":
        for prefix, component in TEXT_PREFIXES[family].items():
            encoder = components[component]
            for layer in range(len(getattr(encoder, "text_model", encoder).encoder.layers)):
                for part in _TEXT:
                    target = f"{component}.text_model.encoder.layers.{layer}.{part}"
                    deltas[f"{prefix}:text_model.encoder.layers.{layer}.{part}"] = _delta(
                        components, (target,), False, generator, scale
                    )
    return deltas


def _transformer_modules(transformer: Any, family: str) -> dict[str, tuple[tuple[str, ...], bool]]:
    if family == "flux":
        blocks = [("double_blocks", "transformer_blocks", len(transformer.transformer_blocks), FLUX_DOUBLE)]
        blocks.append(
            ("single_blocks", "single_transformer_blocks", len(transformer.single_transformer_blocks), FLUX_SINGLE)
        )
        other = FLUX_OTHER
    else:
        blocks = [("joint_blocks", "transformer_blocks", len(transformer.transformer_blocks), SD3_JOINT)]
        other = SD3_OTHER
    found: dict[str, tuple[tuple[str, ...], bool]] = {}
    for original, ours, count, table in blocks:
        for i in range(count):
            block = transformer.get_submodule(f"{ours}.{i}")
            for name, (targets, swap) in table.items():
                if all(_has(block, t) for t in targets):
                    pre_only = swap or (name.startswith("context_block.adaLN") and block.context_pre_only)
                    found[f"{original}.{i}.{name}"] = (tuple(f"{ours}.{i}.{t}" for t in targets), pre_only)
    found.update({n: v for n, v in other.items() if all(_has(transformer, t) for t in v[0])})
    return found


def _has(module: Any, name: str) -> bool:
    try:
        return module.get_submodule(name) is not None
    except AttributeError:
        return False


def _module(components: dict[str, Any], target: str) -> Any:
    component, name = target.split(".", 1)
    root = components[component]
    return root.get_submodule(name if hasattr(root, "text_model") else name.removeprefix("text_model."))


def _delta(components: dict[str, Any], targets: tuple[str, ...], swap: bool, generator: Any, scale: float) -> Delta:
    import torch

    layers = [_module(components, target) for target in targets]
    widths = tuple(layer.out_features for layer in layers)
    down = torch.randn(RANK, layers[0].in_features, generator=generator) * scale
    up = torch.randn(sum(widths), RANK, generator=generator) * scale
    return Delta(targets, widths, swap, down, up)


# ---- layouts ----------------------------------------------------------------------------------


def kohya_state_dict(deltas: dict[str, Delta]) -> dict[str, Any]:
    """sd-scripts' names: prefix + module path with dots as underscores; lora_down/lora_up/alpha."""
    import torch

    state = {}
    for name, delta in deltas.items():
        prefix, path = name.split(":") if ":" in name else ("lora_unet", name)
        key = f"{prefix}_{path.replace('.', '_')}"
        state[f"{key}.lora_down.weight"] = delta.down
        state[f"{key}.lora_up.weight"] = delta.up
        state[f"{key}.alpha"] = torch.tensor(delta.alpha)
    return state


def comfyui_state_dict(deltas: dict[str, Delta]) -> dict[str, Any]:
    """ComfyUI's dotted names under `diffusion_model.` / `text_encoders.clip_l.transformer.`, lora_A/lora_B."""
    import torch

    state = {}
    for name, delta in deltas.items():
        prefix, path = name.split(":") if ":" in name else ("", name)
        key = (COMFY_TEXT[prefix] if prefix else "diffusion_model.") + path
        state[f"{key}.lora_A.weight"] = delta.down
        state[f"{key}.lora_B.weight"] = delta.up
        state[f"{key}.alpha"] = torch.tensor(delta.alpha)
    return state


def diffusers_state_dict(deltas: dict[str, Delta]) -> dict[str, Any]:
    """diffusers/peft: one lora_A/lora_B per diffusers module, alpha/rank baked into lora_A."""
    import torch

    state = {}
    for delta in deltas.values():
        up = delta.up
        if delta.swap:
            shift, scale = up.chunk(2, dim=0)
            up = torch.cat([scale, shift], dim=0)
        for target, piece in zip(delta.targets, torch.split(up, list(delta.widths)), strict=True):
            state[f"{target}.lora_A.weight"] = delta.down * (delta.alpha / RANK)
            state[f"{target}.lora_B.weight"] = piece
    return state


def diffusers_alpha_state_dict(deltas: dict[str, Delta]) -> dict[str, Any]:
    """diffusers module names with kohya's tensor names and unbaked `.alpha` (as some trainers save)."""
    import torch

    state = {}
    for delta in deltas.values():
        up = torch.cat(list(reversed(delta.up.chunk(2, dim=0)))) if delta.swap else delta.up
        for target, piece in zip(delta.targets, torch.split(up, list(delta.widths)), strict=True):
            state[f"{target}.lora_down.weight"] = delta.down.clone()
            state[f"{target}.lora_up.weight"] = piece
            state[f"{target}.alpha"] = torch.tensor(delta.alpha)
    return state


def xlabs_state_dict(deltas: dict[str, Delta]) -> dict[str, Any]:
    """XLabs' FLUX layout (double-block attention only): `processor.qkv_lora1` image, `…2` text; no alpha."""
    names = {
        "img_attn.qkv": "qkv_lora1",
        "img_attn.proj": "proj_lora1",
        "txt_attn.qkv": "qkv_lora2",
        "txt_attn.proj": "proj_lora2",
    }
    state = {}
    for name, delta in deltas.items():
        _, block, module = name.split(".", 2)
        key = f"double_blocks.{block}.processor.{names[module]}"
        state[f"{key}.down.weight"] = delta.down * (delta.alpha / RANK)
        state[f"{key}.up.weight"] = delta.up
    return state


WRITERS = {
    "kohya": kohya_state_dict,
    "comfyui": comfyui_state_dict,
    "diffusers": diffusers_state_dict,
    "diffusers_alpha": diffusers_alpha_state_dict,
    "xlabs": xlabs_state_dict,
}


def write_flow_lora(path: Path, deltas: dict[str, Delta], layout: str) -> Path:
    """These deltas as a `.safetensors` LoRA in `layout` (kohya, comfyui, diffusers, xlabs)."""
    return _save_safetensors(path, WRITERS[layout](deltas))
