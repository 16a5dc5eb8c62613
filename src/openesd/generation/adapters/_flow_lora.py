"""FLUX.1 and SD 3.5 LoRAs in the layouts users download, turned into the diffusers/peft layout diffusers loads.

kohya/A1111 (`lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight`, `lora_te1_…`, with `.alpha`) and
ComfyUI (`diffusion_model.double_blocks.0.img_attn.qkv.lora_A.weight`) name the modules of the original
BFL/Stability models, whose attention projections are fused (`qkv`, FLUX's `linear1`); diffusers keeps
them apart. Each fused LoRA becomes one LoRA per diffusers projection: the same down matrix, the up
matrix split by the projections' widths read from the loaded transformer (so any size of model fits,
not only the released ones), alpha/rank baked in. The deltas are exactly the original ones.
The diffusers/peft layout (`transformer.…lora_A.weight`) and XLabs' FLUX layout go to diffusers as they are.
"""

from __future__ import annotations

import re
from typing import Any

from openesd.errors import ModelError
from openesd.modelfiles.keys import FAMILY_NAMES, lora_family

FAMILY_LABELS = {"flux": "FLUX.1", "sd3": "SD 3.5"}
_DIFFUSERS_PREFIXES = ("transformer.", "text_encoder.", "text_encoder_2.")
_KOHYA_PREFIX = re.compile(r"^lora_(unet|te\d?)_")
_COMFY_PREFIXES = {
    "diffusion_model.": "lora_unet_",
    "text_encoders.clip_l.transformer.": "lora_te1_",
    "text_encoders.clip_g.transformer.": "lora_te2_",
    "text_encoders.t5xxl.transformer.": "lora_te3_",
}
_COMFY_SUFFIXES = {
    ".lora_A.weight": ".lora_down.weight",
    ".lora_B.weight": ".lora_up.weight",
    ".lora_down.weight": ".lora_down.weight",
    ".lora_up.weight": ".lora_up.weight",
    ".alpha": ".alpha",
}
_SD_UNET = re.compile(
    r"^(lora_unet_|unet\.)(down_blocks|up_blocks|mid_block|input_blocks|output_blocks|middle_block)[._]"
)
_KOHYA_PART = re.compile(r"^(?P<module>[^.]+)\.(?P<part>lora_down\.weight|lora_up\.weight|alpha)$")
# kohya's text encoder module names: `text_model_encoder_layers_3_self_attn_q_proj`, `…_mlp_fc1`.
_CLIP_MODULE = re.compile(r"^text_model_encoder_layers_(\d+)_(self_attn_(?:q|k|v|out)_proj|mlp_fc[12])$")
# The text encoders a kohya prefix names in each family; T5 (`lora_te3_`, FLUX's older `lora_te2_`)
# is missing on purpose: diffusers cannot switch T5 adapters per job.
_TEXT_ENCODERS = {
    "flux": {"te": "text_encoder", "te1": "text_encoder"},
    "sd3": {"te1": "text_encoder", "te2": "text_encoder_2"},
}
_T5 = {"flux": ("te2", "te3"), "sd3": ("te3",)}

# (BFL/Stability module pattern after `lora_unet_`, diffusers modules, whether the modulation's
# shift/scale halves are in the opposite order in diffusers).
_Rule = tuple[re.Pattern[str], tuple[str, ...], bool]


def _rule(pattern: str, *targets: str, swap: bool = False) -> _Rule:
    return re.compile(f"^{pattern}$"), targets, swap


_FLUX_RULES = [
    _rule(r"double_blocks_(\d+)_img_attn_qkv", "transformer_blocks.{0}.attn.to_q", "transformer_blocks.{0}.attn.to_k",
          "transformer_blocks.{0}.attn.to_v"),
    _rule(r"double_blocks_(\d+)_txt_attn_qkv", "transformer_blocks.{0}.attn.add_q_proj",
          "transformer_blocks.{0}.attn.add_k_proj", "transformer_blocks.{0}.attn.add_v_proj"),
    _rule(r"double_blocks_(\d+)_img_attn_proj", "transformer_blocks.{0}.attn.to_out.0"),
    _rule(r"double_blocks_(\d+)_txt_attn_proj", "transformer_blocks.{0}.attn.to_add_out"),
    _rule(r"double_blocks_(\d+)_img_mlp_0", "transformer_blocks.{0}.ff.net.0.proj"),
    _rule(r"double_blocks_(\d+)_img_mlp_2", "transformer_blocks.{0}.ff.net.2"),
    _rule(r"double_blocks_(\d+)_txt_mlp_0", "transformer_blocks.{0}.ff_context.net.0.proj"),
    _rule(r"double_blocks_(\d+)_txt_mlp_2", "transformer_blocks.{0}.ff_context.net.2"),
    _rule(r"double_blocks_(\d+)_img_mod_lin", "transformer_blocks.{0}.norm1.linear"),
    _rule(r"double_blocks_(\d+)_txt_mod_lin", "transformer_blocks.{0}.norm1_context.linear"),
    _rule(r"single_blocks_(\d+)_linear1", "single_transformer_blocks.{0}.attn.to_q",
          "single_transformer_blocks.{0}.attn.to_k", "single_transformer_blocks.{0}.attn.to_v",
          "single_transformer_blocks.{0}.proj_mlp"),
    _rule(r"single_blocks_(\d+)_linear2", "single_transformer_blocks.{0}.proj_out"),
    _rule(r"single_blocks_(\d+)_modulation_lin", "single_transformer_blocks.{0}.norm.linear"),
    _rule(r"img_in", "x_embedder"),
    _rule(r"txt_in", "context_embedder"),
    _rule(r"time_in_in_layer", "time_text_embed.timestep_embedder.linear_1"),
    _rule(r"time_in_out_layer", "time_text_embed.timestep_embedder.linear_2"),
    _rule(r"vector_in_in_layer", "time_text_embed.text_embedder.linear_1"),
    _rule(r"vector_in_out_layer", "time_text_embed.text_embedder.linear_2"),
    _rule(r"guidance_in_in_layer", "time_text_embed.guidance_embedder.linear_1"),
    _rule(r"guidance_in_out_layer", "time_text_embed.guidance_embedder.linear_2"),
    _rule(r"final_layer_linear", "proj_out"),
    _rule(r"final_layer_adaLN_modulation_1", "norm_out.linear", swap=True),
]  # fmt: skip

_SD3_RULES = [
    _rule(r"joint_blocks_(\d+)_x_block_attn_qkv", "transformer_blocks.{0}.attn.to_q",
          "transformer_blocks.{0}.attn.to_k", "transformer_blocks.{0}.attn.to_v"),
    _rule(r"joint_blocks_(\d+)_context_block_attn_qkv", "transformer_blocks.{0}.attn.add_q_proj",
          "transformer_blocks.{0}.attn.add_k_proj", "transformer_blocks.{0}.attn.add_v_proj"),
    _rule(r"joint_blocks_(\d+)_x_block_attn2_qkv", "transformer_blocks.{0}.attn2.to_q",
          "transformer_blocks.{0}.attn2.to_k", "transformer_blocks.{0}.attn2.to_v"),
    _rule(r"joint_blocks_(\d+)_x_block_attn_proj", "transformer_blocks.{0}.attn.to_out.0"),
    _rule(r"joint_blocks_(\d+)_x_block_attn2_proj", "transformer_blocks.{0}.attn2.to_out.0"),
    _rule(r"joint_blocks_(\d+)_context_block_attn_proj", "transformer_blocks.{0}.attn.to_add_out"),
    _rule(r"joint_blocks_(\d+)_x_block_mlp_fc1", "transformer_blocks.{0}.ff.net.0.proj"),
    _rule(r"joint_blocks_(\d+)_x_block_mlp_fc2", "transformer_blocks.{0}.ff.net.2"),
    _rule(r"joint_blocks_(\d+)_context_block_mlp_fc1", "transformer_blocks.{0}.ff_context.net.0.proj"),
    _rule(r"joint_blocks_(\d+)_context_block_mlp_fc2", "transformer_blocks.{0}.ff_context.net.2"),
    _rule(r"joint_blocks_(\d+)_x_block_adaLN_modulation_1", "transformer_blocks.{0}.norm1.linear"),
    # The last block's context stream only modulates (pre-only): diffusers keeps its scale before its shift.
    _rule(r"joint_blocks_(\d+)_context_block_adaLN_modulation_1", "transformer_blocks.{0}.norm1_context.linear",
          swap=True),
    _rule(r"context_embedder", "context_embedder"),
    _rule(r"x_embedder_proj", "pos_embed.proj"),
    _rule(r"t_embedder_mlp_0", "time_text_embed.timestep_embedder.linear_1"),
    _rule(r"t_embedder_mlp_2", "time_text_embed.timestep_embedder.linear_2"),
    _rule(r"y_embedder_mlp_0", "time_text_embed.text_embedder.linear_1"),
    _rule(r"y_embedder_mlp_2", "time_text_embed.text_embedder.linear_2"),
    _rule(r"final_layer_linear", "proj_out"),
    _rule(r"final_layer_adaLN_modulation_1", "norm_out.linear", swap=True),
]  # fmt: skip

_RULES = {"flux": _FLUX_RULES, "sd3": _SD3_RULES}


def flow_family(pipe: Any) -> str | None:
    """ "flux" or "sd3" for a pipeline built on those transformers (quantised ones included), else None."""
    from diffusers import FluxTransformer2DModel, SD3Transformer2DModel

    transformer = getattr(pipe, "transformer", None)
    if isinstance(transformer, FluxTransformer2DModel):
        return "flux"
    if isinstance(transformer, SD3Transformer2DModel):
        return "sd3"
    return None


def to_diffusers(state: dict[str, Any], pipe: Any, family: str, file_name: str) -> dict[str, Any]:
    """The LoRA in the layout `pipe.load_lora_weights` takes, or ModelError naming the layout it is in."""
    foreign = _foreign_family(state, family)
    if foreign is not None:
        example = next((k for k in sorted(state) if not k.startswith("lora_te")), sorted(state)[0])
        article = "an" if foreign.startswith("S") else "a"
        raise ModelError(
            f"LoRA {file_name!r} is {article} {foreign} LoRA (e.g. {example}); "
            f"this checkpoint is {FAMILY_LABELS[family]}"
        )
    layout = layout_of(state, family)
    if layout == "diffusers":
        return _bake_peft_alphas(state)
    if layout == "xlabs":
        return state  # diffusers' FLUX loader converts XLabs files itself
    if layout == "comfyui":
        state = _comfy_to_kohya(state)
    if layout in ("kohya", "comfyui"):
        return _kohya_to_diffusers(state, pipe, family, file_name)
    raise ModelError(_layout_refusal(state, family, file_name, layout))


def layout_of(state: dict[str, Any], family: str) -> str:
    """diffusers | kohya | comfyui | xlabs | bfl_control | unknown."""
    keys = list(state)
    if family == "flux" and any(k.endswith(".query_norm.scale") for k in keys):
        return "bfl_control"
    if all(k.startswith(_DIFFUSERS_PREFIXES) for k in keys) and any(
        ".lora_A." in k or ".lora_down." in k for k in keys
    ):
        return "diffusers"
    if all(_KOHYA_PREFIX.match(k) for k in keys):
        return "kohya"
    if all(k.startswith(tuple(_COMFY_PREFIXES)) for k in keys):
        return "comfyui"
    if family == "flux" and any(".processor." in k and "_lora" in k for k in keys):
        return "xlabs"
    return "unknown"


def _foreign_family(state: dict[str, Any], family: str) -> str | None:
    """The family a LoRA's UNet/transformer keys were made for, where it is plainly another one."""
    made_for = lora_family({k: getattr(v, "shape", ()) for k, v in state.items()})
    if made_for in FAMILY_LABELS and made_for != family:
        return FAMILY_LABELS[made_for]
    if any(_SD_UNET.match(k) for k in state):  # text-encoder-only files cannot tell
        return FAMILY_NAMES[made_for] if made_for in FAMILY_NAMES and made_for != "unknown" else "SD 1.x/2.x/SDXL"
    return None


def _layout_refusal(state: dict[str, Any], family: str, file_name: str, layout: str) -> str:
    label = FAMILY_LABELS[family]
    if layout == "bfl_control":
        return (
            f"LoRA {file_name!r} is a FLUX.1 Control LoRA (Canny/Depth: query_norm.scale keys), which needs the "
            "FLUX.1 Control pipeline; it cannot be applied as a style LoRA"
        )
    example = sorted(state)[0] if state else "(no keys)"
    supported = "kohya/A1111 (lora_unet_…, lora_te1_…), diffusers/peft (transformer.…lora_A.weight), ComfyUI"
    supported += " (diffusion_model.…), XLabs (….processor.qkv_lora1…)" if family == "flux" else " (diffusion_model.…)"
    return (
        f"LoRA {file_name!r} is in a layout this worker does not know (e.g. {example}); "
        f"supported for {label}: {supported}"
    )


def _comfy_to_kohya(state: dict[str, Any]) -> dict[str, Any]:
    """ComfyUI's dotted names of the same modules as kohya's (`diffusion_model.double_blocks.0.img_attn.qkv`)."""
    out = {}
    for key, value in state.items():
        prefix = next(p for p in _COMFY_PREFIXES if key.startswith(p))
        suffix = next((s for s in _COMFY_SUFFIXES if key.endswith(s)), None)
        if suffix is None:
            raise ModelError(f"LoRA key {key!r} is neither lora_A/lora_B nor lora_down/lora_up/alpha")
        module = key[len(prefix) : -len(suffix)].replace(".", "_")
        out[_COMFY_PREFIXES[prefix] + module + _COMFY_SUFFIXES[suffix]] = value
    return out


def _kohya_to_diffusers(state: dict[str, Any], pipe: Any, family: str, file_name: str) -> dict[str, Any]:
    modules: dict[str, dict[str, Any]] = {}
    for key, value in state.items():
        match = _KOHYA_PART.match(key)
        if match is None:
            raise ModelError(f"LoRA {file_name!r} has key {key!r}, not lora_down/lora_up/alpha of a kohya LoRA")
        modules.setdefault(match["module"], {})[match["part"]] = value
    out: dict[str, Any] = {}
    for module, parts in modules.items():
        if "lora_down.weight" not in parts or "lora_up.weight" not in parts:
            raise ModelError(f"LoRA {file_name!r}: module {module} lacks its lora_down or lora_up weight")
        component, names, swap = _targets(module, family, file_name)
        out.update(_split(pipe, component, names, parts, swap, file_name))
    return out


def _targets(module: str, family: str, file_name: str) -> tuple[str, tuple[str, ...], bool]:
    """(pipeline component, its module names, swap) that a kohya module name stands for."""
    label = FAMILY_LABELS[family]
    prefix = _KOHYA_PREFIX.match(module)
    assert prefix is not None  # layout_of matched every key
    kind, rest = prefix[1], module[prefix.end() :]
    if kind == "unet":
        for pattern, targets, swap in _RULES[family]:
            found = pattern.match(rest)
            if found:
                return "transformer", tuple(t.format(*found.groups()) for t in targets), swap
        raise ModelError(f"LoRA {file_name!r} adapts {module}, which is not a module of a {label} transformer")
    encoder = _TEXT_ENCODERS[family].get(kind)
    if encoder is None and kind in _T5[family]:
        raise ModelError(
            f"LoRA {file_name!r} adapts the T5 text encoder (lora_{kind}_… keys), which this worker cannot "
            f"apply; {label} LoRAs may adapt the transformer and the CLIP text encoder(s)"
        )
    found = _CLIP_MODULE.match(rest)
    if encoder is None or found is None:
        raise ModelError(f"LoRA {file_name!r} adapts {module}, which is not a layer of {label}'s CLIP text encoders")
    layer, part = found.groups()
    name = part.replace("self_attn_", "self_attn.").replace("mlp_", "mlp.")
    return encoder, (f"text_model.encoder.layers.{layer}.{name}",), False


def _split(
    pipe: Any, component: str, names: tuple[str, ...], parts: dict[str, Any], swap: bool, file_name: str
) -> dict[str, Any]:
    """peft lora_A/lora_B per diffusers module: down scaled by alpha/rank; a fused up split by the modules' widths."""
    import torch

    down, up = parts["lora_down.weight"], parts["lora_up.weight"]
    rank = down.shape[0]
    alpha = float(parts["alpha"]) if "alpha" in parts else float(rank)
    down = down * (alpha / rank)
    widths = [_out_features(pipe, component, name, file_name) for name in names]
    if sum(widths) != up.shape[0]:
        raise ModelError(
            f"LoRA {file_name!r} does not fit this checkpoint: {component}.{names[0]} and its fused siblings are "
            f"{sum(widths)} wide, the LoRA's up weight has {up.shape[0]} rows"
        )
    if swap and _swaps(pipe, names[0]):
        shift, scale = up.chunk(2, dim=0)
        up = torch.cat([scale, shift], dim=0)
    out = {}
    for name, piece in zip(names, torch.split(up, widths, dim=0), strict=True):
        out[f"{component}.{name}.lora_A.weight"] = down.contiguous()
        out[f"{component}.{name}.lora_B.weight"] = piece.contiguous()
    return out


def _out_features(pipe: Any, component: str, name: str, file_name: str) -> int:
    root = getattr(pipe, component)
    if not hasattr(root, "text_model"):  # transformers 5's CLIP text models are flat; diffusers drops the prefix too
        name = name.removeprefix("text_model.")
    try:
        module = root.get_submodule(name)
    except AttributeError:
        raise ModelError(
            f"LoRA {file_name!r} does not fit this checkpoint: its {component} has no module {name} "
            "(a LoRA for a model with more blocks?)"
        ) from None
    base = getattr(module, "base_layer", module)  # a module peft already wraps for another LoRA
    width = getattr(base, "out_features", None) or getattr(base, "out_channels", None)
    if width is None:
        raise ModelError(f"LoRA {file_name!r} adapts {component}.{name}, which is not a linear or conv layer")
    return int(width)


def _swaps(pipe: Any, name: str) -> bool:
    """Whether this modulation is one whose shift/scale order diffusers reverses (final norm, pre-only context)."""
    if name == "norm_out.linear":
        return True
    block = pipe.transformer.get_submodule(name.rsplit(".", 2)[0])
    return bool(getattr(block, "context_pre_only", False))


def _bake_peft_alphas(state: dict[str, Any]) -> dict[str, Any]:
    """Fold `….alpha` keys (kept by some trainers next to peft weights) into lora_A, as kohya's scale; some
    files name diffusers modules with kohya's lora_down/lora_up."""
    alphas = {k[: -len(".alpha")]: float(v) for k, v in state.items() if k.endswith(".alpha")}
    out = {
        k.replace(".lora_down.", ".lora_A.").replace(".lora_up.", ".lora_B."): v
        for k, v in state.items()
        if not k.endswith(".alpha")
    }
    for module, alpha in alphas.items():
        key = f"{module}.lora_A.weight"
        if key in out:
            out[key] = out[key] * (alpha / out[key].shape[0])
    return out
