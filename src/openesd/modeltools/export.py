"""Write diffusers components as one A1111/LDM single file (the layout users upload).

The inverse of diffusers' single-file conversion; test fixtures and the benchmark use it so
that every file they load goes through the same loader real uploads do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from openesd.modelfiles import keys

_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_VAE_RESNET = {"conv_shortcut": "nin_shortcut"}
_VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def unet_to_ldm(state: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """diffusers UNet2DConditionModel state dict -> `model.diffusion_model.*` keys."""
    names = _unet_key_map(config)
    out = {}
    for key, tensor in state.items():
        module, _, leaf = key.rpartition(".")
        target = _map_unet_module(module, names)
        out[f"{keys.UNET}{target}.{leaf}"] = tensor
    return out


def _unet_key_map(config: dict[str, Any]) -> dict[str, str]:
    """Module-prefix renames diffusers -> LDM for one UNet config."""
    per = config["layers_per_block"]
    n = len(config["block_out_channels"])
    m = {
        "conv_in": "input_blocks.0.0",
        "time_embedding.linear_1": "time_embed.0",
        "time_embedding.linear_2": "time_embed.2",
        "add_embedding.linear_1": "label_emb.0.0",
        "add_embedding.linear_2": "label_emb.0.2",
        "conv_norm_out": "out.0",
        "conv_out": "out.2",
        "mid_block.resnets.0": "middle_block.0",
        "mid_block.attentions.0": "middle_block.1",
        "mid_block.resnets.1": "middle_block.2",
    }
    for i in range(n):
        for j in range(per):
            index = 1 + i * (per + 1) + j
            m[f"down_blocks.{i}.resnets.{j}"] = f"input_blocks.{index}.0"
            m[f"down_blocks.{i}.attentions.{j}"] = f"input_blocks.{index}.1"
        if i < n - 1:
            m[f"down_blocks.{i}.downsamplers.0.conv"] = f"input_blocks.{1 + i * (per + 1) + per}.0.op"
        has_attn = config["up_block_types"][i].startswith("CrossAttn")
        for j in range(per + 1):
            index = i * (per + 1) + j
            m[f"up_blocks.{i}.resnets.{j}"] = f"output_blocks.{index}.0"
            m[f"up_blocks.{i}.attentions.{j}"] = f"output_blocks.{index}.1"
        if i < n - 1:
            last = i * (per + 1) + per
            m[f"up_blocks.{i}.upsamplers.0.conv"] = f"output_blocks.{last}.{2 if has_attn else 1}.conv"
    return m


def _map_unet_module(module: str, names: dict[str, str]) -> str:
    # Longest matching prefix wins ("down_blocks.1.resnets.0" before "down_blocks.1").
    for prefix in sorted(names, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            rest = module[len(prefix) + 1 :]
            is_resnet = ".resnets." in prefix or prefix.startswith("mid_block.resnets")
            if is_resnet and rest:
                rest = _RESNET.get(rest, rest)
            return names[prefix] + (f".{rest}" if rest else "")
    raise KeyError(f"no LDM name for UNet module {module!r}")


def vae_to_ldm(state: dict[str, Any], config: dict[str, Any], prefix: str = keys.VAE) -> dict[str, Any]:
    """diffusers AutoencoderKL state dict -> LDM VAE keys (`first_stage_model.*` by default)."""
    n = len(config["block_out_channels"])
    out = {}
    for key, tensor in state.items():
        name = _vae_name(key, n)
        if ".mid.attn_1." in name and tensor.ndim == 2:
            tensor = tensor[:, :, None, None]  # LDM uses 1x1 convolutions for attention
        out[prefix + name] = tensor
    return out


def _vae_name(key: str, levels: int) -> str:
    parts = key.split(".")
    side = parts[0]
    if parts[1] == "down_blocks":
        rest = ".".join(parts[3:])
        rest = rest.replace("resnets.", "block.").replace("downsamplers.0.", "downsample.")
        return _vae_leaf(f"{side}.down.{parts[2]}.{rest}")
    if parts[1] == "up_blocks":
        rest = ".".join(parts[3:])
        rest = rest.replace("resnets.", "block.").replace("upsamplers.0.", "upsample.")
        return _vae_leaf(f"{side}.up.{levels - 1 - int(parts[2])}.{rest}")
    if parts[1] == "mid_block":
        rest = ".".join(parts[2:])
        rest = rest.replace("resnets.0.", "block_1.").replace("resnets.1.", "block_2.")
        for old, new in _VAE_ATTN.items():
            rest = rest.replace(f"attentions.0.{old}.", f"attn_1.{new}.")
        return _vae_leaf(f"{side}.mid.{rest}")
    return key.replace("conv_norm_out", "norm_out")


def _vae_leaf(name: str) -> str:
    for old, new in _VAE_RESNET.items():
        name = name.replace(f".{old}.", f".{new}.")
    return name


def clip_to_ldm(model: Any, prefix: str) -> dict[str, Any]:
    """transformers CLIPTextModel -> `<prefix>text_model.*` (the A1111 layout, with `text_model.`)."""
    state = model.state_dict()
    out = {}
    for key, tensor in state.items():
        name = key if key.startswith("text_model.") else f"text_model.{key}"
        out[prefix + name] = tensor
    return out


def openclip_to_ldm(model: Any, prefix: str) -> dict[str, Any]:
    """transformers CLIPTextModelWithProjection -> OpenCLIP keys under `prefix` (e.g. embedders.1.model.)."""
    state = {k.removeprefix("text_model."): v for k, v in model.state_dict().items()}
    out = {
        "positional_embedding": state.pop("embeddings.position_embedding.weight"),
        "token_embedding.weight": state.pop("embeddings.token_embedding.weight"),
        "ln_final.weight": state.pop("final_layer_norm.weight"),
        "ln_final.bias": state.pop("final_layer_norm.bias"),
    }
    if "text_projection.weight" in state:  # SD 2.x's encoder has none; SDXL's OpenCLIP-bigG has one
        out["text_projection"] = state.pop("text_projection.weight").T.contiguous()
    layers = {int(k.split(".")[2]) for k in state if k.startswith("encoder.layers.")}
    for i in sorted(layers):
        src, dst = f"encoder.layers.{i}.", f"transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            qkv = [state.pop(f"{src}self_attn.{p}_proj.{kind}") for p in "qkv"]
            out[f"{dst}attn.in_proj_{kind}"] = _cat(qkv)
            out[f"{dst}attn.out_proj.{kind}"] = state.pop(f"{src}self_attn.out_proj.{kind}")
            out[f"{dst}ln_1.{kind}"] = state.pop(f"{src}layer_norm1.{kind}")
            out[f"{dst}ln_2.{kind}"] = state.pop(f"{src}layer_norm2.{kind}")
            out[f"{dst}mlp.c_fc.{kind}"] = state.pop(f"{src}mlp.fc1.{kind}")
            out[f"{dst}mlp.c_proj.{kind}"] = state.pop(f"{src}mlp.fc2.{kind}")
    return {prefix + k: v for k, v in out.items()}


def _cat(tensors: list[Any]) -> Any:
    import torch

    return torch.cat(tensors, dim=0).contiguous()


def pipeline_to_ldm(components: dict[str, Any], openclip_text: bool = False) -> dict[str, Any]:
    """unet + vae + text encoder(s) -> one A1111 state dict (SD 1.x, SD 2.x with `openclip_text`,
    SDXL base or refiner layout)."""
    unet, vae = components["unet"], components["vae"]
    state = unet_to_ldm(unet.state_dict(), dict(unet.config))
    state.update(vae_to_ldm(vae.state_dict(), dict(vae.config)))
    first, second = components.get("text_encoder"), components.get("text_encoder_2")
    if openclip_text:
        state.update(openclip_to_ldm(first, keys.OPENCLIP_SD2))
    elif first is not None and second is not None:
        state.update(clip_to_ldm(first, "conditioner.embedders.0.transformer."))
        state.update(openclip_to_ldm(second, keys.OPENCLIP_XL))
    elif second is not None:
        state.update(openclip_to_ldm(second, keys.OPENCLIP_REFINER))
    else:
        state.update(clip_to_ldm(first, "cond_stage_model.transformer."))
    return {k: v.detach().contiguous() for k, v in state.items()}


def save_single_file(components: dict[str, Any], path: Path, openclip_text: bool = False) -> Path:
    """Write `components` as an A1111 `.safetensors` checkpoint at `path`."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(pipeline_to_ldm(components, openclip_text), str(path))
    return path
