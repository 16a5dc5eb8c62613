"""A tiny CLIP image encoder (clip_h.pth's layout) and tiny IP-Adapters that fit `tiny_models.py`'s UNets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support import tiny_models as tm

ENCODER_HIDDEN = 64  # one 64-wide head, as the loader assumes for widths it does not know
ENCODER_PROJECTION = 48
ENCODER_IMAGE = 32
ENCODER_PATCH = 8


def tiny_clip_vision(seed: int = 21) -> Any:
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    config = CLIPVisionConfig(
        hidden_size=ENCODER_HIDDEN,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=1,
        patch_size=ENCODER_PATCH,
        image_size=ENCODER_IMAGE,
        projection_dim=ENCODER_PROJECTION,
        hidden_act="gelu",
        layer_norm_eps=1e-5,
    )
    return CLIPVisionModelWithProjection(config).eval()


def write_clip_vision(path: Path, seed: int = 21) -> Path:
    """clip_h.pth as the extension downloads it: a plain CLIPVisionModelWithProjection state dict (torch.save)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(tiny_clip_vision(seed).state_dict(), str(path))
    return path


def ip_adapter_state(family: str = "sd15", seed: int = 22, scale: float = 1.0) -> dict:
    """{"image_proj": ..., "ip_adapter": ...} for the tiny UNet of `family`, numbered as IP-Adapter files are
    (1, 3, 5, ... over the UNet's attention layers in down, up, mid order)."""
    import torch

    torch.manual_seed(seed)
    unet = tm.tiny_unet(family)
    cross = unet.config.cross_attention_dim
    layers: dict[str, Any] = {}
    key_id = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        attn = unet.get_submodule(name.removesuffix(".processor"))
        hidden = attn.to_k.weight.shape[0]
        layers[f"{key_id}.to_k_ip.weight"] = torch.randn(hidden, cross) * scale
        layers[f"{key_id}.to_v_ip.weight"] = torch.randn(hidden, cross) * scale
        key_id += 2
    return {"image_proj": _plain(cross, torch), "ip_adapter": layers}


def _plain(cross: int, torch: Any) -> dict:
    return {
        "proj.weight": torch.randn(4 * cross, ENCODER_PROJECTION) * 0.5,
        "proj.bias": torch.randn(4 * cross) * 0.5,
        "norm.weight": torch.ones(cross),
        "norm.bias": torch.zeros(cross),
    }


def write_ip_adapter(path: Path, family: str = "sd15", seed: int = 22) -> Path:
    """`.safetensors` with the flat `image_proj.*` / `ip_adapter.*` keys, or the official nested `.bin`."""
    import torch

    state = ip_adapter_state(family, seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".bin":
        torch.save(state, str(path))
        return path
    from safetensors.torch import save_file

    flat = {f"{group}.{key}": value.contiguous() for group, inner in state.items() for key, value in inner.items()}
    save_file(flat, str(path))
    return path


def tiny_t2i_adapter(seed: int = 23) -> Any:
    """A full T2I-Adapter for the tiny SD 1.5 UNet: its features match the UNet's down levels (32, 64 channels
    at 1/2 and 1/4 of the image, the tiny VAE's latent size and the next level)."""
    import torch
    from diffusers import T2IAdapter

    torch.manual_seed(seed)
    adapter = T2IAdapter(in_channels=3, channels=list(tm.SD15_UNET_CHANNELS), num_res_blocks=2, downscale_factor=2)
    return adapter.eval()


def write_t2i_adapter(path: Path, seed: int = 23) -> Path:
    """`.pth` in TencentARC's original keys (conv_in, body.{2l + r}.block1/2, body.{2l}.in_conv), or diffusers'
    keys for `.safetensors`."""
    import re

    import torch

    state = {k: v.contiguous() for k, v in tiny_t2i_adapter(seed).state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
        return path
    original = {}
    for key, value in state.items():
        key = key.removeprefix("adapter.")
        if m := re.match(r"body\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            key = f"body.{int(m.group(1)) * 2 + int(m.group(2))}.{m.group(3)}"
        elif m := re.match(r"body\.(\d+)\.in_conv\.(.+)", key):
            key = f"body.{int(m.group(1)) * 2}.in_conv.{m.group(2)}"
        original[key] = value
    torch.save(original, str(path))
    return path
