"""T2I-Adapter models in ControlNet units (TencentARC's t2iadapter_*_sd14v1.pth, or diffusers-keyed files): the
adapter's features of the unit's control map go to the UNet as `down_intrablock_additional_residuals`."""

from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

from openesd.errors import ModelError, UnsupportedFeature

SOFT_SCALES = (0.25, 0.62, 0.825, 1.0)  # the extension's "My prompt is more important" per adapter level
CACHE_SIZE = 2
_CACHE: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
_KEYS: dict[tuple[Any, ...], bool] = {}


def is_adapter(path: Path) -> bool:
    """Whether the file holds a T2I-Adapter (original `body.N.block1` / diffusers `adapter.body.` keys)."""
    if Path(path).is_dir():  # a diffusers ControlNet folder
        return False
    key = _identity(path)
    if key not in _KEYS:
        _KEYS[key] = any(k.startswith(("body.", "adapter.body.", "adapter.conv_in")) for k in _key_names(path))
    return _KEYS[key]


class AdapterResiduals:
    """One T2I-Adapter unit as a `ConditionedUNet` extra: its features, scaled, while the run is in range."""

    keep_in_hires = False  # the features are for the first pass's size

    def __init__(self, features: list[Any], weight: float, start: float, end: float, mode: int) -> None:
        scales = [weight] * len(features)
        if mode == 1:  # "My prompt is more important": shallow levels get less, as the extension does
            scales = [weight * s for s in SOFT_SCALES[-len(features) :]]
        self.features = [f * s for f, s in zip(features, scales)]
        self.start, self.end, self.cond_only = start, end, mode == 2

    def inputs(self, progress: float, which: int, batch: int) -> dict[str, Any]:
        if progress < self.start or progress > self.end:
            return {}
        # "ControlNet is more important": only the prompt's half is steered (zeros keep one batched call).
        off = self.cond_only and which == 0
        residuals = [(f * 0 if off else f).expand(batch, *f.shape[1:]) for f in self.features]
        return {"down_intrablock_additional_residuals": residuals}


def residuals(path: Path, control: Any, unet: Any, unit: tuple[float, float, float, int]) -> AdapterResiduals:
    """The adapter's features of `control` (a PIL image at the generation size) for the UNet of this job."""
    import numpy as np
    import torch

    adapter = _cached(path, unet)
    pixels = torch.from_numpy(np.asarray(control.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    if adapter.config.in_channels == 1:  # sketch/canny adapters read one channel
        pixels = pixels.mean(dim=1, keepdim=True)
    with torch.no_grad():
        features = adapter(pixels.to(unet.device, unet.dtype))
    weight, start, end, mode = unit
    return AdapterResiduals(list(features), weight, start, end, mode)


def _cached(path: Path, unet: Any) -> Any:
    key = (*_identity(path), str(unet.device), str(unet.dtype))
    if key not in _CACHE:
        _CACHE[key] = load_adapter(path, unet).to(unet.device, unet.dtype)
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    _CACHE.move_to_end(key)
    return _CACHE[key]


def load_adapter(path: Path, unet: Any) -> Any:
    """A diffusers T2IAdapter from an original or diffusers-keyed file; its layout read from the shapes."""
    from diffusers import T2IAdapter

    from openesd.generation.models.loading import read_state_dict

    state = read_state_dict(path)
    if not any(k.startswith("adapter.") for k in state):
        state = _from_original(state, path.name)
    channels = [state[f"adapter.body.{i}.resnets.0.block1.weight"].shape[0] for i in _levels(state)]
    blocks = len({m.group(1) for k in state if (m := re.match(r"adapter\.body\.0\.resnets\.(\d+)\.", k))})
    factor = _downscale(state["adapter.conv_in.weight"].shape[1], path.name)
    if factor == 16:
        raise UnsupportedFeature(
            f"T2I-Adapter {path.name!r} is an SDXL adapter (full_adapter_xl), which OpenESD does not run; "
            "supported: the full SD 1.x T2I-Adapters (t2iadapter_*_sd14v1)"
        )
    expected = list(unet.config.block_out_channels)
    if channels != expected:
        raise ModelError(
            f"T2I-Adapter {path.name!r} gives features of {channels} channels but this checkpoint's UNet "
            f"has down levels of {expected} (an adapter for another model family)"
        )
    adapter: Any = T2IAdapter(  # type: ignore[no-untyped-call]
        in_channels=state["adapter.conv_in.weight"].shape[1] // factor**2,
        channels=channels,
        num_res_blocks=blocks,
        downscale_factor=factor,
        adapter_type="full_adapter",
    )
    missing, unexpected = adapter.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise UnsupportedFeature(
            f"T2I-Adapter {path.name!r} is not a full adapter (missing {missing[:2]}, unexpected {unexpected[:2]}); "
            "supported: the full T2I-Adapters (t2iadapter_canny/sketch/depth/keypose/seg/openpose_sd14v1); "
            "light (color), style and SDXL adapters are not"
        )
    adapter.train(False)
    return adapter


def _from_original(state: dict[str, Any], name: str) -> dict[str, Any]:
    """TencentARC's keys -> diffusers': body.{2l + r}.block* -> body.l.resnets.r.block*, body.{2l}.in_conv."""
    state = {k.removeprefix("adapter."): v for k, v in state.items()}
    if any(k.startswith("body.0.in_conv") for k in state) or any(".down_opt." in k for k in state):
        raise UnsupportedFeature(
            f"T2I-Adapter {name!r} is a light (color) adapter or uses convolution downsampling; "
            "supported: the full T2I-Adapters (t2iadapter_*_sd14v1)"
        )
    per_level = 2
    out = {}
    for key, value in state.items():
        match = re.match(r"body\.(\d+)\.(block1|block2|in_conv)\.(.+)", key)
        if key.startswith("conv_in."):
            out[f"adapter.{key}"] = value
        elif match:
            index, part, leaf = int(match.group(1)), match.group(2), match.group(3)
            level, block = divmod(index, per_level)
            target = f"in_conv.{leaf}" if part == "in_conv" else f"resnets.{block}.{part}.{leaf}"
            out[f"adapter.body.{level}.{target}"] = value
        else:
            raise UnsupportedFeature(f"T2I-Adapter {name!r} has an unknown layer {key!r} (a style adapter?)")
    return out


def _levels(state: dict[str, Any]) -> list[int]:
    return sorted({int(m.group(1)) for k in state if (m := re.match(r"adapter\.body\.(\d+)\.", k))})


def _downscale(conv_in: int, name: str) -> int:
    """conv_in reads the pixel-unshuffled image: channels x factor^2 (SD 1.x files: 3 or 1 x 64)."""
    for factor in (8, 2, 4, 16):
        if conv_in % factor**2 == 0 and conv_in // factor**2 in (1, 3):
            return factor
    raise ModelError(f"T2I-Adapter {name!r}: cannot tell its input from conv_in's {conv_in} channels")


def _identity(path: Path) -> tuple[Any, ...]:
    stat = Path(path).stat()
    return (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


def _key_names(path: Path) -> list[str]:
    from openesd.generation.models.loading import SAFE_SUFFIXES, read_state_dict

    if path.suffix.lower() in SAFE_SUFFIXES:
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                return list(handle.keys())
        except Exception:  # unreadable: the ControlNet loader reports it with its own message
            return []
    return list(read_state_dict(path))
