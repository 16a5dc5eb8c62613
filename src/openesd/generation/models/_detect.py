"""Read an A1111/LDM state dict's keys and shapes and derive the diffusers config of each part.

Shapes decide everything structural (as ComfyUI's model_detection does), so tiny test files and
real full-size files take the same path; what shapes cannot tell comes from `_configs/families.json`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from openesd.modelfiles.keys import (  # noqa: F401  (the key layout, shared with the API's upload checks)
    CLIP_L_SD1,
    CLIP_L_XL,
    FAMILY_NAMES,
    OPENCLIP_REFINER,
    OPENCLIP_SD2,
    OPENCLIP_XL,
    UNET,
    UNSUPPORTED_FAMILIES,
    VAE,
    checkpoint_family,
)


@dataclass
class Architecture:
    """What a checkpoint is: its family and the diffusers config of every part it holds."""

    family: str  # sd1 | sd2 | sdxl | sdxl_refiner
    inpainting: bool
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    prediction_type: str | None = None  # None: the family's default (shapes cannot tell v from epsilon)


class UnknownArchitecture(ValueError):
    """The keys match no Stable Diffusion layout this worker knows."""


Shapes = Mapping[str, tuple[int, ...]]


def detect(shapes: Shapes) -> Architecture:
    """Family and per-part configs (unet, vae, text_encoder[_2]) from key -> shape."""
    family = _family(shapes)
    unet = _unet_config(shapes, family)
    configs: dict[str, dict[str, Any]] = {"unet": unet}
    if any(k.startswith(VAE) for k in shapes):
        configs["vae"] = vae_config(shapes, VAE)
    if family == "sd1":
        configs["text_encoder"] = _clip_config(shapes, CLIP_L_SD1)
    elif family == "sd2":
        # SD 2.x conditions on the penultimate layer; diffusers drops the last one.
        configs["text_encoder"] = _openclip_config(shapes, OPENCLIP_SD2, drop_last=True)
    elif family == "sdxl":
        configs["text_encoder"] = _clip_config(shapes, CLIP_L_XL)
        configs["text_encoder_2"] = _openclip_config(shapes, OPENCLIP_XL)
    else:
        configs["text_encoder_2"] = _openclip_config(shapes, OPENCLIP_REFINER)
    return Architecture(family=family, inpainting=unet["in_channels"] == 9, configs=configs)


def _family(shapes: Shapes) -> str:
    family = checkpoint_family(shapes.keys())
    if family in ("flux", "sd3") or family in UNSUPPORTED_FAMILIES:
        raise UnknownArchitecture(f"it is a {FAMILY_NAMES[family]} model, which this worker cannot run")
    if family != "unknown":
        return family
    if not any(k.startswith(UNET) for k in shapes):
        raise UnknownArchitecture("no UNet weights (model.diffusion_model.*) found")
    raise UnknownArchitecture("no text encoder weights of SD 1.x, SD 2.x or SDXL layout found")


def _indices(shapes: Shapes, pattern: str) -> list[int]:
    regex = re.compile(pattern)
    found = {int(m.group(1)) for key in shapes if (m := regex.match(key))}
    return sorted(found)


def _depth(shapes: Shapes, prefix: str) -> int:
    """Transformer blocks inside one LDM SpatialTransformer (0 when it is no attention block)."""
    return len(_indices(shapes, re.escape(prefix) + r"transformer_blocks\.(\d+)\."))


def _unet_levels(shapes: Shapes) -> tuple[list[int], list[int], int]:
    """Per-resolution output channels, transformer depth, and resnets per level."""
    channels: list[int] = []
    depths: list[int] = []
    per_level = 0
    count = 0
    for i in _indices(shapes, re.escape(UNET) + r"input_blocks\.(\d+)\.")[1:]:
        block = f"{UNET}input_blocks.{i}."
        if f"{block}0.op.weight" in shapes:  # downsampler closes a level
            per_level = per_level or count
            count = 0
            continue
        if count == 0:
            channels.append(shapes[f"{block}0.out_layers.3.weight"][0])
            depths.append(_depth(shapes, f"{block}1."))
        count += 1
    return channels, depths, per_level or count


def _unet_config(shapes: Shapes, family: str) -> dict[str, Any]:
    conv_in = shapes[f"{UNET}input_blocks.0.0.weight"]
    channels, depths, layers = _unet_levels(shapes)
    attn = [d > 0 for d in depths]
    context = _context_dim(shapes)
    linear = _linear_projection(shapes)
    # SD 1.x uses 8 heads everywhere; SD 2.x and SDXL use 64-channel heads (A1111/ComfyUI rule).
    heads = [8] * len(channels) if family == "sd1" else [max(1, c // 64) for c in channels]
    config: dict[str, Any] = {
        "_class_name": "UNet2DConditionModel",
        "in_channels": conv_in[1],
        "out_channels": shapes[f"{UNET}out.2.weight"][0],
        "block_out_channels": channels,
        "layers_per_block": layers,
        "down_block_types": ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attn],
        "up_block_types": ["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn)],
        "cross_attention_dim": context,
        "attention_head_dim": heads if len(set(heads)) > 1 else heads[0],
        "use_linear_projection": linear,
        "transformer_layers_per_block": [max(d, 1) for d in depths],
    }
    config.update(_addition_embedding(shapes, family))
    return config


def _context_dim(shapes: Shapes) -> int:
    for key, shape in shapes.items():
        if key.startswith(UNET) and key.endswith("attn2.to_k.weight"):
            return shape[1]
    raise UnknownArchitecture("the UNet has no cross-attention layers")


def _linear_projection(shapes: Shapes) -> bool:
    for key, shape in shapes.items():
        if key.startswith(UNET) and key.endswith(".proj_in.weight"):
            return len(shape) == 2
    return False


def _addition_embedding(shapes: Shapes, family: str) -> dict[str, Any]:
    """SDXL conditions on pooled text + size/crop (+ aesthetic score for the refiner)."""
    key = f"{UNET}label_emb.0.0.weight"
    if key not in shapes:
        return {}
    in_dim = shapes[key][1]
    if family == "sdxl":
        pooled, numbers = shapes[f"{OPENCLIP_XL}text_projection"][1], 6
    else:
        pooled, numbers = shapes[f"{OPENCLIP_REFINER}text_projection"][1], 5
    return {
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": (in_dim - pooled) // numbers,
        "projection_class_embeddings_input_dim": in_dim,
    }


def vae_config(shapes: Shapes, prefix: str) -> dict[str, Any]:
    """AutoencoderKL config from LDM VAE keys under `prefix` ("" for a standalone VAE file)."""
    levels = _indices(shapes, re.escape(prefix) + r"encoder\.down\.(\d+)\.")
    channels = [shapes[f"{prefix}encoder.down.{i}.block.0.conv1.weight"][0] for i in levels]
    blocks = _indices(shapes, re.escape(prefix) + r"encoder\.down\.0\.block\.(\d+)\.")
    n = len(channels)
    return {
        "_class_name": "AutoencoderKL",
        "in_channels": shapes[f"{prefix}encoder.conv_in.weight"][1],
        "out_channels": shapes[f"{prefix}decoder.conv_out.weight"][0],
        "latent_channels": shapes[f"{prefix}encoder.conv_out.weight"][0] // 2,
        "block_out_channels": channels,
        "layers_per_block": len(blocks),
        "down_block_types": ["DownEncoderBlock2D"] * n,
        "up_block_types": ["UpDecoderBlock2D"] * n,
        "use_quant_conv": f"{prefix}quant_conv.weight" in shapes,
        "use_post_quant_conv": f"{prefix}post_quant_conv.weight" in shapes,
    }


def _clip_config(shapes: Shapes, prefix: str) -> dict[str, Any]:
    vocab, hidden = shapes[f"{prefix}embeddings.token_embedding.weight"]
    layers = _indices(shapes, re.escape(prefix) + r"encoder\.layers\.(\d+)\.")
    return {
        "architectures": ["CLIPTextModel"],
        "model_type": "clip_text_model",
        "vocab_size": vocab,
        "hidden_size": hidden,
        "projection_dim": hidden,
        "intermediate_size": shapes[f"{prefix}encoder.layers.0.mlp.fc1.weight"][0],
        "num_hidden_layers": len(layers),
        "num_attention_heads": max(1, hidden // 64),
        "max_position_embeddings": shapes[f"{prefix}embeddings.position_embedding.weight"][0],
    }


def _openclip_config(shapes: Shapes, prefix: str, drop_last: bool = False) -> dict[str, Any]:
    vocab, hidden = shapes[f"{prefix}token_embedding.weight"]
    layers = _indices(shapes, re.escape(prefix) + r"transformer\.resblocks\.(\d+)\.")
    projection = shapes.get(f"{prefix}text_projection", (hidden, hidden))[1]
    return {
        "architectures": ["CLIPTextModelWithProjection"],
        "model_type": "clip_text_model",
        "vocab_size": vocab,
        "hidden_size": hidden,
        "projection_dim": projection,
        "intermediate_size": shapes[f"{prefix}transformer.resblocks.0.mlp.c_fc.weight"][0],
        "num_hidden_layers": len(layers) - 1 if drop_last else len(layers),
        "num_attention_heads": max(1, hidden // 64),
        "max_position_embeddings": shapes[f"{prefix}positional_embedding"][0],
    }
