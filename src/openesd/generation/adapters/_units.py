"""Readers of a ControlNet unit's fields shared by every kind of unit (ControlNet, IP-Adapter, T2I-Adapter)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from openesd.errors import ModelError, PayloadError
from openesd.generation.types import ModelFiles


def number(unit: dict, key: str, default: float, index: int) -> float:
    value = unit.get(key)
    if value is None:
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        raise PayloadError(f"ControlNet unit {index} {key} {value!r} is not a number") from None


def resolve_model(name: Any, index: int, models: ModelFiles) -> Path:
    """`control_v11p_sd15_canny [d14c016b]` -> the file whose stem (or name) matches, hash suffix dropped."""
    files = [Path(p) for p in (models or {}).get("ControlNet", [])]
    wanted = re.sub(r"\s*\[[0-9a-fA-F]+\]\s*$", "", str(name or "")).strip()
    if not wanted or wanted.lower() == "none":
        raise PayloadError(f"ControlNet unit {index} is enabled but names no model")
    for path in files:
        if wanted in (path.stem, path.name):
            return path
    for path in files:  # names typed by hand often differ only in case
        if wanted.lower() in (path.stem.lower(), path.name.lower()):
            return path
    available = ", ".join(p.name for p in files) or "none"
    raise ModelError(
        f"ControlNet model {wanted!r} (unit {index}) is not among this job's ControlNet files: {available}"
    )
