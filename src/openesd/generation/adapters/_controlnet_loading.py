"""Load a ControlNet offline (A1111/LDM or diffusers keys, config read from tensor shapes; or a diffusers folder)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from openesd.errors import ModelError
from openesd.generation.models import _detect
from openesd.generation.models.loading import read_state_dict, shapes_of

LDM_PREFIX = "control_model."
_DIFFUSERS_MARK = "controlnet_cond_embedding.conv_in.weight"


def load_controlnet(path: Path, dtype: Any) -> Any:
    """A ControlNetModel on the CPU in `dtype`, from a diffusers folder, a diffusers-keyed file or an A1111/LDM file."""
    from diffusers import ControlNetModel

    path = Path(path)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(f"ControlNet folder {path.name!r} has no config.json")
        return ControlNetModel.from_pretrained(str(path), torch_dtype=dtype, local_files_only=True)
    state = read_state_dict(path)
    if _DIFFUSERS_MARK in state:
        config = _sibling_config(path) or diffusers_controlnet_config(shapes_of(state))
        return _build(path.name, config, state, dtype)
    config = controlnet_config(_ldm_shapes(state, path.name))
    return _build(path.name, config, _ldm_to_diffusers(state, config), dtype)


def _sibling_config(path: Path) -> dict[str, Any] | None:
    """A diffusers `config.json` beside the weights (an unpacked diffusers folder) wins over detection."""
    config_file = path.with_name("config.json")
    return json.loads(config_file.read_text()) if config_file.is_file() else None


def _ldm_to_diffusers(state: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint

    converted = convert_controlnet_checkpoint(_hint_out_at_14(state), config)
    # diffusers' converter leaves SDXL's label_emb (pooled text + size conditioning) out.
    prefix = LDM_PREFIX if any(k.startswith(LDM_PREFIX) for k in state) else ""
    for ldm, diffusers_name in (
        ("label_emb.0.0", "add_embedding.linear_1"),
        ("label_emb.0.2", "add_embedding.linear_2"),
    ):
        for leaf in ("weight", "bias"):
            if f"{prefix}{ldm}.{leaf}" in state:
                converted[f"{diffusers_name}.{leaf}"] = state[f"{prefix}{ldm}.{leaf}"]
    return {k: v for k, v in converted.items() if v is not None}


def _build(name: str, config: dict[str, Any], state: dict[str, Any], dtype: Any) -> Any:
    """The model built without initialising weights, then every tensor taken from the file (strictly)."""
    import torch
    from diffusers import ControlNetModel

    with torch.device("meta"):
        model = ControlNetModel.from_config(config)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    except RuntimeError as exc:  # a tensor of the wrong shape
        raise ModelError(f"ControlNet {name!r} does not match its detected layout: {exc}") from exc
    if missing or unexpected:
        detail = ", ".join([*(f"missing {k}" for k in missing[:3]), *(f"unexpected {k}" for k in unexpected[:3])])
        raise ModelError(f"ControlNet {name!r} does not match its detected layout ({detail})")
    if config.get("addition_embed_type") == "text_time":
        model.register_forward_pre_hook(_fit_time_embedding, with_kwargs=True)
    return model.to(dtype=dtype).eval()


def _fit_time_embedding(module: Any, args: Any, kwargs: dict) -> None:
    """SDXL's size/crop embedding width has no weights of its own, so a file cannot tell it (256 in real
    files); the base model's pooled and time-id widths on each call fix it exactly."""
    cond = kwargs.get("added_cond_kwargs") or {}
    text, times = cond.get("text_embeds"), cond.get("time_ids")
    if text is not None and times is not None:
        module.add_time_proj.num_channels = (module.add_embedding.linear_1.in_features - text.shape[-1]) // times.shape[
            -1
        ]


def _hint_out_at_14(state: dict[str, Any]) -> dict[str, Any]:
    """diffusers' converter expects the hint's last conv at index 14 (four levels); renumber other depths."""
    prefix = LDM_PREFIX if any(k.startswith(LDM_PREFIX) for k in state) else ""
    pattern = re.compile(re.escape(prefix) + r"input_hint_block\.(\d+)\.")
    last = max(int(m.group(1)) for k in state if (m := pattern.match(k)))
    if last == 14:
        return state
    old, new = f"{prefix}input_hint_block.{last}.", f"{prefix}input_hint_block.14."
    return {(new + k[len(old) :] if k.startswith(old) else k): v for k, v in state.items()}


def _ldm_shapes(state: dict[str, Any], name: str) -> dict[str, tuple[int, ...]]:
    """Shapes under the UNet prefix `_detect` reads; files without `control_model.` are accepted too."""
    shapes = shapes_of(state)
    prefix = LDM_PREFIX if any(k.startswith(LDM_PREFIX) for k in shapes) else ""
    found = {_detect.UNET + k[len(prefix) :]: v for k, v in shapes.items() if k.startswith(prefix)}
    if f"{_detect.UNET}input_hint_block.0.weight" not in found:
        raise ModelError(f"ControlNet {name!r} has no ControlNet weights (control_model.input_hint_block.*)")
    return found


def controlnet_config(shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    """diffusers ControlNetModel config from LDM ControlNet shapes (keys under `_detect.UNET`)."""
    unet = _detect.UNET
    channels, depths, layers = _detect._unet_levels(shapes)
    linear = _detect._linear_projection(shapes)
    label = shapes.get(f"{unet}label_emb.0.0.weight")
    # SD 1.x (conv projections) uses 8 heads everywhere; SD 2.x and SDXL use 64-channel heads.
    heads = [8] * len(channels) if not linear and label is None else [max(1, c // 64) for c in channels]
    config: dict[str, Any] = {
        "_class_name": "ControlNetModel",
        "in_channels": shapes[f"{unet}input_blocks.0.0.weight"][1],
        "conditioning_channels": shapes[f"{unet}input_hint_block.0.weight"][1],
        "conditioning_embedding_out_channels": _hint_channels(shapes),
        "block_out_channels": channels,
        "layers_per_block": layers,
        "down_block_types": ["CrossAttnDownBlock2D" if d > 0 else "DownBlock2D" for d in depths],
        "cross_attention_dim": _detect._context_dim(shapes),
        "attention_head_dim": heads if len(set(heads)) > 1 else heads[0],
        "use_linear_projection": linear,
        "transformer_layers_per_block": [max(d, 1) for d in depths],
    }
    if label is not None:
        config.update(_addition_embedding(label[1], config["cross_attention_dim"]))
    return config


def _hint_channels(shapes: dict[str, tuple[int, ...]]) -> list[int]:
    """input_hint_block: conv_in, then (same-width conv, downsampling conv) pairs, then conv_out."""
    convs = _detect._indices(
        {k: v for k, v in shapes.items() if k.endswith(".weight")},
        re.escape(f"{_detect.UNET}input_hint_block.") + r"(\d+)\.weight",
    )
    inner = convs[1:-1]
    out = lambda i: shapes[f"{_detect.UNET}input_hint_block.{i}.weight"][0]  # noqa: E731
    return [out(convs[0])] + [out(inner[j]) for j in range(1, len(inner), 2)]


def _addition_embedding(in_dim: int, context: int) -> dict[str, Any]:
    """SDXL: pooled text + six size/crop numbers; real files are 1280 + 6 * 256 (`_fit_time_embedding` checks)."""
    time_dim = 256 if in_dim == 2816 else (in_dim - context // 2) // 6
    return {
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": time_dim,
        "projection_class_embeddings_input_dim": in_dim,
    }


def diffusers_controlnet_config(shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    """ControlNetModel config from diffusers-keyed shapes (`diffusion_pytorch_model.safetensors` uploaded alone)."""
    levels = _detect._indices(shapes, r"down_blocks\.(\d+)\.")
    channels = [shapes[f"down_blocks.{i}.resnets.0.conv2.weight"][0] for i in levels]
    depths = [
        len(_detect._indices(shapes, rf"down_blocks\.{i}\.attentions\.0\.transformer_blocks\.(\d+)\.")) for i in levels
    ]
    linear = any(len(v) == 2 for k, v in shapes.items() if k.endswith("proj_in.weight"))
    context = next((v[1] for k, v in shapes.items() if k.endswith("attn2.to_k.weight")), None)
    if context is None:
        raise ModelError("ControlNet has no cross-attention layers (attn2.to_k)")
    label = shapes.get("add_embedding.linear_1.weight")
    heads = [8] * len(channels) if not linear and label is None else [max(1, c // 64) for c in channels]
    hint = [shapes["controlnet_cond_embedding.conv_in.weight"][0]]
    blocks = _detect._indices(shapes, r"controlnet_cond_embedding\.blocks\.(\d+)\.")
    hint += [shapes[f"controlnet_cond_embedding.blocks.{i}.weight"][0] for i in blocks[1::2]]
    config: dict[str, Any] = {
        "_class_name": "ControlNetModel",
        "in_channels": shapes["conv_in.weight"][1],
        "conditioning_channels": shapes["controlnet_cond_embedding.conv_in.weight"][1],
        "conditioning_embedding_out_channels": hint,
        "block_out_channels": channels,
        "layers_per_block": len(_detect._indices(shapes, r"down_blocks\.0\.resnets\.(\d+)\.")),
        "down_block_types": ["CrossAttnDownBlock2D" if d > 0 else "DownBlock2D" for d in depths],
        "cross_attention_dim": context,
        "attention_head_dim": heads if len(set(heads)) > 1 else heads[0],
        "use_linear_projection": linear,
        "transformer_layers_per_block": [max(d, 1) for d in depths],
    }
    if label is not None:
        config.update(_addition_embedding(label[1], context))
    return config
