"""Activate a job's LoRAs on a cached pipeline as named peft adapters, through diffusers' own LoRA loading.

SD 1.x/2.x/SDXL LoRAs go to diffusers as they are; FLUX.1 and SD 3.5 LoRAs are first put in the
diffusers layout by `_flow_lora` (diffusers reads only some of their layouts, at the released sizes).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from openesd.errors import ModelError
from openesd.generation.adapters import _flow_lora, _merged
from openesd.generation.models.loading import read_state_dict

MAX_ADAPTERS = 8
_LYCORIS = {"hada_w1_a": "LoHa", "lokr_w1": "LoKr"}  # key fragments of LyCORIS types diffusers cannot load
# Adapter names, least recently used first, kept on the UNet (the transformer of FLUX.1/SD 3.5): pipelines
# derived for a job (job.derive) share it, so the order survives whichever pipeline object a job holds.
_ORDER = "_openesd_lora_order"


def apply_loras(pipe: Any, loras: list[tuple[Path, float]]) -> None:
    """Make exactly these (file, weight) LoRAs active; [] turns every loaded LoRA off. On a compiled UNet
    they are merged into its weights instead of run beside them (`_merged`: no recompile per LoRA)."""
    unet = getattr(pipe, "unet", None)  # FLUX.1 / SD 3.5 pipelines have a transformer, never compiled here
    merged = None if unet is None else _merged.state(unet)
    if merged is None:
        _activate(pipe, loras)
        return
    with merged.attached(unet):
        merged.restore(unet)
        _activate(pipe, loras)
        if loras:
            merged.merge(unet)


def _activate(pipe: Any, loras: list[tuple[Path, float]]) -> None:
    if not loras:
        if _loaded(pipe):
            pipe.disable_lora()
        return
    weights: dict[str, float] = {}
    for path, weight in loras:
        name = _ensure_loaded(pipe, Path(path))
        # The same LoRA twice adds up, as the WebUI applies it once per tag.
        weights[name] = weights.get(name, 0.0) + float(weight)
    _touch(pipe, list(weights))
    _evict(pipe, keep=set(weights))
    pipe.enable_lora()
    pipe.set_adapters(list(weights), adapter_weights=list(weights.values()))


def adapter_name(path: Path) -> str:
    """A stable peft adapter name for this file version: its stem plus a digest of path, size and mtime."""
    stat = path.stat()
    digest = hashlib.sha256(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:10]
    stem = re.sub(r"\W", "_", path.stem)[:40]  # peft adapter names live in ModuleDicts: no dots
    return f"{stem}_{digest}"


def _loaded(pipe: Any) -> set[str]:
    return {name for names in pipe.get_list_adapters().values() for name in names}


def _ensure_loaded(pipe: Any, path: Path) -> str:
    if not path.is_file():
        raise ModelError(f"LoRA file {path.name!r} not found")
    name = adapter_name(path)
    if name in _loaded(pipe):
        return name
    state = read_state_dict(path)
    kinds = sorted({kind for key in state for kind in _LYCORIS if f".{kind}" in key})
    if kinds:
        raise ModelError(
            f"LoRA {path.name!r} is a LyCORIS {'/'.join(_LYCORIS[k] for k in kinds)} file; "
            f"supported: LoRA and LoCon (lora_down/lora_up) in kohya or diffusers format"
        )
    family = _flow_lora.flow_family(pipe)
    if family is not None:
        state = _flow_lora.to_diffusers(state, pipe, family, path.name)
    try:
        pipe.load_lora_weights(state, adapter_name=name)
    except (ValueError, KeyError, RuntimeError, TypeError, IndexError) as exc:
        _drop(pipe, name)
        raise ModelError(f"LoRA {path.name!r} does not fit this checkpoint: {exc}") from exc
    if name not in _loaded(pipe):
        raise ModelError(
            f"LoRA {path.name!r} holds no LoRA weights for this checkpoint's {_denoiser_name(pipe)} or text encoder"
        )
    return name


def _denoiser_name(pipe: Any) -> str:
    return "transformer" if getattr(pipe, "unet", None) is None else "UNet"


def _denoiser(pipe: Any) -> Any:
    unet = getattr(pipe, "unet", None)
    return pipe.transformer if unet is None else unet


def _touch(pipe: Any, names: list[str]) -> None:
    order = [n for n in getattr(_denoiser(pipe), _ORDER, []) if n not in names]
    setattr(_denoiser(pipe), _ORDER, order + names)


def _evict(pipe: Any, keep: set[str]) -> None:
    """Delete least recently used adapters beyond MAX_ADAPTERS (never one this job uses)."""
    loaded = _loaded(pipe)
    tracked = getattr(_denoiser(pipe), _ORDER, [])
    order = sorted(loaded - set(tracked)) + [n for n in tracked if n in loaded]  # untracked count as oldest
    while len(order) > MAX_ADAPTERS:
        victim = next((n for n in order if n not in keep), None)
        if victim is None:
            break
        _drop(pipe, victim)
        order.remove(victim)
    setattr(_denoiser(pipe), _ORDER, order)


def _drop(pipe: Any, name: str) -> None:
    if name in _loaded(pipe):
        pipe.delete_adapters(name)
