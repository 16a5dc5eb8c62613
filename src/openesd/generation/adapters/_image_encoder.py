"""The CLIP image encoders of sd-webui-controlnet's IP-Adapter modules (clip_h.pth, clip_g.pth), loaded offline.

The extension keeps them in its annotator downloads folder (`clip_vision/clip_h.pth` = CLIP ViT-H/14,
`clip_g.pth` = ViT-bigG/14); both are transformers `CLIPVisionModelWithProjection` state dicts
(`vision_model.*`, `visual_projection.weight`). The model's config is read from the tensor shapes.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

from openesd.errors import ModelError
from openesd.generation.types import ModelFiles

ANNOTATOR = "ControlNet-annotator"  # the checkpoint type users upload annotator and encoder files as
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# The three CLIP vision towers the extension ships configs for: width -> (heads, activation).
_KNOWN = {1024: (16, "quick_gelu"), 1280: (16, "gelu"), 1664: (16, "gelu")}
_CACHE: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
CACHE_SIZE = 2


def find_encoder(models: ModelFiles, stem: str, module: str) -> Path:
    """`clip_h` -> the uploaded clip_h.pth (or .safetensors/.bin); a missing file is named for the user."""
    files = [Path(p) for p in (models or {}).get(ANNOTATOR, [])]
    for path in files:
        if path.stem.lower() == stem or path.name.lower() == stem:
            return path
    available = ", ".join(p.name for p in files) or "none"
    raise ModelError(
        f"ControlNet module {module!r} needs the image encoder {stem}.pth (sd-webui-controlnet's "
        f"annotator downloads/clip_vision/{stem}.pth); upload it as a {ANNOTATOR} file. "
        f"This job's {ANNOTATOR} files: {available}"
    )


def load_encoder(path: Path, device: Any, dtype: Any) -> Any:
    """A CLIPVisionModelWithProjection on `device`, cached by file identity."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, str(device), str(dtype))
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    model = _build(path).to(device=device, dtype=dtype)
    _CACHE[key] = model
    while len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return model


def _build(path: Path) -> Any:
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from openesd.generation.models.loading import read_state_dict

    state = {k: v for k, v in read_state_dict(path).items() if not k.endswith("position_ids")}
    config = CLIPVisionConfig(**encoder_config(state, path.name))
    with torch.device("meta"):
        model = CLIPVisionModelWithProjection(config)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    except RuntimeError as exc:
        raise ModelError(f"image encoder {path.name!r} does not match its detected layout: {exc}") from exc
    if missing or unexpected:
        detail = ", ".join([*(f"missing {k}" for k in missing[:3]), *(f"unexpected {k}" for k in unexpected[:3])])
        raise ModelError(f"image encoder {path.name!r} is not a CLIP vision model ({detail})")
    # A non-persistent buffer: no file has it, so it is made here rather than left on the meta device.
    embeddings = model.vision_model.embeddings
    positions = torch.arange(embeddings.num_positions).expand((1, -1))
    embeddings.register_buffer("position_ids", positions, persistent=False)
    model.train(False)
    return model


def encoder_config(state: dict[str, Any], name: str) -> dict[str, Any]:
    """CLIPVisionConfig fields from a CLIPVisionModelWithProjection state dict's shapes."""
    try:
        patch = state["vision_model.embeddings.patch_embedding.weight"].shape
        positions = state["vision_model.embeddings.position_embedding.weight"].shape[0]
        projection = state["visual_projection.weight"].shape[0]
        fc1 = state["vision_model.encoder.layers.0.mlp.fc1.weight"].shape[0]
    except KeyError as exc:
        raise ModelError(
            f"image encoder {name!r} is not a CLIP vision model (no {exc.args[0]}); upload the extension's "
            "clip_h.pth / clip_g.pth"
        ) from None
    layers = {int(m.group(1)) for k in state if (m := re.match(r"vision_model\.encoder\.layers\.(\d+)\.", k))}
    hidden = patch[0]
    heads, act = _KNOWN.get(hidden, (max(1, hidden // 64), "gelu"))
    side = round((positions - 1) ** 0.5)
    return {
        "hidden_size": hidden,
        "intermediate_size": fc1,
        "num_hidden_layers": len(layers),
        "num_attention_heads": heads,
        "hidden_act": act,
        "patch_size": patch[-1],
        "image_size": side * patch[-1],
        "projection_dim": projection,
        "num_channels": patch[1],
        "layer_norm_eps": 1e-5,
    }


def pixel_values(rgb: Any, size: int) -> Any:
    """The extension's preprocessing: stretch to size x size (INTER_AREA), scale to [0, 1], CLIP-normalize."""
    import cv2
    import numpy as np
    import torch

    img = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    img = (img - np.asarray(CLIP_MEAN, dtype=np.float32)) / np.asarray(CLIP_STD, dtype=np.float32)
    return torch.from_numpy(img.transpose(2, 0, 1).copy())[None]


def embeds(model: Any, rgb: Any, hidden_states: bool) -> tuple[Any, Any]:
    """(cond, uncond) as the IP-Adapter's projection expects them: the projected image embedding and
    zeros (plain adapters), or the penultimate hidden states of the image and of an all-zero input (plus)."""
    import torch

    pixels = pixel_values(rgb, model.config.image_size).to(model.device, model.dtype)
    with torch.no_grad():
        if not hidden_states:
            cond = model(pixels).image_embeds
            return cond.float(), torch.zeros_like(cond).float()
        cond = model(pixels, output_hidden_states=True).hidden_states[-2]
        uncond = model(torch.zeros_like(pixels), output_hidden_states=True).hidden_states[-2]
        return cond.float(), uncond.float()
