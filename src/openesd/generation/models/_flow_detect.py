"""FLUX.1 and SD 3.x single files: which parts a file holds and each part's diffusers/transformers config.

As for SD (`_detect.py`), shapes decide everything structural (layers, widths, guidance embedding =
FLUX.1 dev vs schnell, SD 3.5 Large vs Medium: dual attention layers, qk norm); what shapes cannot
tell comes from `_configs/families.json`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from openesd.modelfiles.keys import FAMILY_NAMES, UNET, checkpoint_family

Shapes = Mapping[str, tuple[int, ...]]
FLOW_FAMILIES = ("flux", "sd3")
# Prefixes of the parts inside an all-in-one file (ComfyUI/Forge and Stability's layouts).
TEXT_PREFIXES = {
    "clip_l": "text_encoders.clip_l.transformer.",
    "clip_g": "text_encoders.clip_g.transformer.",
    "t5": "text_encoders.t5xxl.transformer.",
}
VAE_PREFIXES = ("first_stage_model.", "vae.")
# The text encoders each family conditions on, as (pipeline component, role).
ENCODERS = {
    "flux": (("text_encoder", "clip_l"), ("text_encoder_2", "t5")),
    "sd3": (("text_encoder", "clip_l"), ("text_encoder_2", "clip_g"), ("text_encoder_3", "t5")),
}
ROLE_NAMES = {"clip_l": "CLIP-L", "clip_g": "CLIP-G", "t5": "T5-XXL"}


class UnsupportedFlowFile(ValueError):
    """The keys are a diffusion transformer this worker cannot run, or no known layout at all."""


@dataclass
class FlowArchitecture:
    """A FLUX.1/SD 3 file: its family, the transformer config, the prefixes of the parts it also holds."""

    family: str  # flux | sd3
    transformer_prefix: str
    transformer: dict[str, Any]
    variant: str  # "FLUX.1 dev", "SD 3.5 Large", ...
    text_encoders: dict[str, str] = field(default_factory=dict)  # role -> key prefix inside the file
    vae_prefix: str | None = None


def detect_flow(shapes: Shapes) -> FlowArchitecture:
    family = checkpoint_family(shapes.keys())
    if family not in FLOW_FAMILIES:
        raise UnsupportedFlowFile(f"it is a {FAMILY_NAMES.get(family, family)} model, which this worker cannot run")
    prefix = UNET if any(k.startswith(UNET) for k in shapes) else ""
    inner = {k[len(prefix) :]: v for k, v in shapes.items() if k.startswith(prefix)}
    config, variant = _flux_config(inner) if family == "flux" else _sd3_config(inner)
    encoders = {role: p for role, p in TEXT_PREFIXES.items() if any(k.startswith(p) for k in shapes)}
    vae = next((p for p in VAE_PREFIXES if f"{p}decoder.conv_out.weight" in shapes), None)
    return FlowArchitecture(family, prefix, config, variant, encoders, vae)


def _count(shapes: Shapes, pattern: str) -> int:
    regex = re.compile(pattern)
    return len({m.group(1) for k in shapes if (m := regex.match(k))})


def _flux_config(shapes: Shapes) -> tuple[dict[str, Any], str]:
    inner, in_channels = shapes["img_in.weight"]
    if in_channels != 64:  # Fill (384), Depth/Canny (128): the image is conditioned on a control image
        raise UnsupportedFlowFile(
            f"it is a FLUX.1 Fill/Depth/Canny model ({in_channels} input channels), which this worker cannot run"
        )
    head_dim = shapes["double_blocks.0.img_attn.norm.query_norm.scale"][0]
    time_axis = min(16, head_dim // 4)  # BFL's rope axes: 16 + 56 + 56 = 128 (the head dim)
    guidance = "guidance_in.in_layer.weight" in shapes
    config = {
        "_class_name": "FluxTransformer2DModel",
        "patch_size": 1,
        "in_channels": in_channels,
        "num_layers": _count(shapes, r"double_blocks\.(\d+)\."),
        "num_single_layers": _count(shapes, r"single_blocks\.(\d+)\."),
        "attention_head_dim": head_dim,
        "num_attention_heads": inner // head_dim,
        "joint_attention_dim": shapes["txt_in.weight"][1],
        "pooled_projection_dim": shapes["vector_in.in_layer.weight"][1],
        "guidance_embeds": guidance,
        "axes_dims_rope": [time_axis, (head_dim - time_axis) // 2, (head_dim - time_axis) // 2],
    }
    return config, "FLUX.1 dev" if guidance else "FLUX.1 schnell"


def _sd3_config(shapes: Shapes) -> tuple[dict[str, Any], str]:
    hidden, in_channels, patch, _ = shapes["x_embedder.proj.weight"]
    layers = _count(shapes, r"joint_blocks\.(\d+)\.")
    qk_norm = "joint_blocks.0.x_block.attn.ln_q.weight" in shapes
    head_dim = shapes["joint_blocks.0.x_block.attn.ln_q.weight"][0] if qk_norm else 64
    dual = sorted(
        int(m.group(1)) for k in shapes if (m := re.match(r"joint_blocks\.(\d+)\.x_block\.attn2\.qkv\.weight$", k))
    )
    caption, joint = shapes["context_embedder.weight"]
    config = {
        "_class_name": "SD3Transformer2DModel",
        "patch_size": patch,
        "in_channels": in_channels,
        "out_channels": shapes["final_layer.linear.weight"][0] // (patch * patch),
        "num_layers": layers,
        "attention_head_dim": head_dim,
        "num_attention_heads": hidden // head_dim,
        "joint_attention_dim": joint,
        "caption_projection_dim": caption,
        "pooled_projection_dim": shapes["y_embedder.mlp.0.weight"][1],
        "pos_embed_max_size": math.isqrt(shapes["pos_embed"][1]),
        "qk_norm": "rms_norm" if qk_norm else None,
        "dual_attention_layers": dual,
    }
    if not qk_norm:
        variant = "SD 3 Medium"
    else:
        variant = "SD 3.5 Medium" if dual else "SD 3.5 Large"
    return config, variant


def clip_config(shapes: Shapes, prefix: str = "") -> dict[str, Any]:
    """CLIPTextModel(WithProjection) config from transformers' keys under `prefix` (+ `text_model.`)."""
    t = f"{prefix}text_model."
    vocab, hidden = shapes[f"{t}embeddings.token_embedding.weight"]
    projection = shapes.get(f"{prefix}text_projection.weight", (hidden, hidden))[0]
    return {
        "model_type": "clip_text_model",
        "vocab_size": vocab,
        "hidden_size": hidden,
        "projection_dim": projection,
        "intermediate_size": shapes[f"{t}encoder.layers.0.mlp.fc1.weight"][0],
        "num_hidden_layers": _count(shapes, re.escape(t) + r"encoder\.layers\.(\d+)\."),
        "num_attention_heads": max(1, hidden // 64),
        "max_position_embeddings": shapes[f"{t}embeddings.position_embedding.weight"][0],
    }


def t5_config(shapes: Shapes, prefix: str = "") -> dict[str, Any]:
    """T5EncoderModel (v1.1) config from transformers' keys under `prefix`."""
    block = f"{prefix}encoder.block.0.layer."
    buckets, heads = shapes[f"{block}0.SelfAttention.relative_attention_bias.weight"]
    gated = f"{block}1.DenseReluDense.wi_0.weight" in shapes
    d_ff = shapes[f"{block}1.DenseReluDense.wi_0.weight" if gated else f"{block}1.DenseReluDense.wi.weight"][0]
    vocab, d_model = shapes[f"{prefix}shared.weight"]
    return {
        "model_type": "t5",
        "vocab_size": vocab,
        "d_model": d_model,
        "d_kv": shapes[f"{block}0.SelfAttention.q.weight"][0] // heads,
        "d_ff": d_ff,
        "num_layers": _count(shapes, re.escape(f"{prefix}encoder.block.") + r"(\d+)\."),
        "num_heads": heads,
        "relative_attention_num_buckets": buckets,
        "feed_forward_proj": "gated-gelu" if gated else "relu",
    }


def clip_role(config: dict[str, Any], family: str, transformer: dict[str, Any]) -> str | None:
    """clip_l | clip_g | None: which CLIP the transformer can take this one as (by the widths it needs)."""
    if family == "flux":  # FLUX conditions on CLIP-L's pooled output, whose width is the transformer's input
        return "clip_l" if config["hidden_size"] == transformer["pooled_projection_dim"] else None
    # SD 3 joins CLIP-L's and CLIP-G's projections (768 + 1280): the wider one is G.
    pooled = transformer["pooled_projection_dim"]
    if config["projection_dim"] >= pooled:
        return None
    return "clip_g" if 2 * config["projection_dim"] > pooled else "clip_l"
