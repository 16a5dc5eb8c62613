"""Minimal valid model files, written without torch: the key names that tell a file's kind and family,
tiny tensors, and optional padding, so upload tests send what the server's upload checks accept.

For files a worker can actually load, use tests/support/tiny_models.py.
"""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path

_UNET = "model.diffusion_model.input_blocks.0.0.weight"
KEYS: dict[tuple[str, str], list[str]] = {
    ("checkpoint", "sd1"): [
        _UNET,
        "first_stage_model.encoder.conv_in.weight",
        "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight",
    ],
    ("checkpoint", "sd2"): [_UNET, "cond_stage_model.model.token_embedding.weight"],
    ("checkpoint", "sdxl"): [
        _UNET,
        "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight",
        "conditioner.embedders.1.model.positional_embedding",
    ],
    ("checkpoint", "sdxl_refiner"): [_UNET, "conditioner.embedders.0.model.positional_embedding"],
    ("checkpoint", "flux"): ["double_blocks.0.img_attn.qkv.weight", "single_blocks.0.linear1.weight"],
    ("checkpoint", "sd3"): ["model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight"],
    ("lora", "sd1"): [
        "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight",
        "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight",
        "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight",
        # SD 1.x's real 768-wide cross-attention context is what tells it from SD 2.x
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight",
    ],
    ("lora", "sdxl"): [
        "lora_unet_input_blocks_4_1_proj_in.lora_down.weight",
        "lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight",
    ],
    ("controlnet", "sd1"): ["control_model.input_hint_block.0.weight", "control_model.input_blocks.0.0.weight"],
    ("vae", "unknown"): ["encoder.conv_in.weight", "decoder.conv_out.weight", "quant_conv.weight"],
    ("embedding", "unknown"): ["emb_params"],
}


def safetensors_bytes(
    tensors: dict[str, tuple[str, list[int], bytes]], metadata: dict[str, str] | None = None
) -> bytes:
    """A safetensors file from name -> (dtype, shape, raw bytes)."""
    header: dict = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)  # the format pads the header to 8 bytes
    return struct.pack("<Q", len(encoded)) + encoded + b"".join(data for _, _, data in tensors.values())


def model_file_bytes(kind: str = "checkpoint", family: str = "sd1", *, padding: int = 0, salt: str = "") -> bytes:
    """A valid safetensors file whose keys make it a `kind` (checkpoint, lora, controlnet, vae, embedding) of
    `family`; `padding` adds that many random (seeded by `salt`) bytes, `salt` also makes the content distinct."""
    tensors = {
        key: ("F16", [1, 768], bytes(2 * 768)) if "attn2_to_k" in key else ("F16", [2, 2], bytes(8))
        for key in KEYS[(kind, family)]
    }
    if padding:
        tensors["padding"] = ("U8", [padding], random.Random(salt).randbytes(padding))
    return safetensors_bytes(tensors, {"salt": salt} if salt else None)


def write_model_file(path: Path, kind: str = "checkpoint", family: str = "sd1", **options) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model_file_bytes(kind, family, **options))
    return path


def torch_file_bytes(shapes: dict[str, list[int]]) -> bytes:
    """A `.pt`/`.ckpt` file (torch's zip format) holding zero tensors of these shapes: torch's weights-only
    loader accepts it (needs torch)."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save({key: torch.zeros(shape) for key, shape in shapes.items()}, buffer)
    return buffer.getvalue()
