"""GGUF transformer files (city96's FLUX.1 and SD 3.5 conversions: Q8_0, Q5/Q4 and K-quants) through diffusers' loader.

The tensors stay quantised on the device; each linear layer dequantises its weight for its own matmul
(diffusers' GGUFLinear). Names in these files are the BFL/Stability ones, so they are converted here,
then handed to diffusers with the quantisation config so that it builds the GGUF layers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from openesd.errors import ModelError


def load_gguf_transformer(path: Path, family: str, config: Mapping[str, Any], dtype: Any) -> Any:
    """The transformer of a `.gguf` file, its quantised layers computing in `dtype`."""
    import diffusers
    from diffusers import GGUFQuantizationConfig

    from openesd.generation.quant._layouts import CLASSES, convert

    state = _read(path)
    converted = convert(family, state, path)
    folder = _config_folder(family, config)
    cls = getattr(diffusers, CLASSES[family])
    model = cls.from_single_file(
        converted,
        config=str(folder),
        subfolder="transformer",
        quantization_config=GGUFQuantizationConfig(compute_dtype=dtype),
        torch_dtype=dtype,
        local_files_only=True,
    )
    return model.eval().requires_grad_(False)


def _read(path: Path) -> dict[str, Any]:
    from diffusers.models.model_loading_utils import load_gguf_checkpoint

    if not path.is_file():
        raise ModelError(f"model file {path.name!r} not found")
    try:
        return load_gguf_checkpoint(str(path))
    except (ValueError, OSError, KeyError) as exc:  # gguf's reader: bad magic, truncated data, unknown type
        raise ModelError(f"model file {path.name!r} is not a readable GGUF file: {exc}") from exc


def _config_folder(family: str, config: Mapping[str, Any]) -> Path:
    """A `transformer/config.json` folder for diffusers' single-file loader, written once per config."""
    from openesd.generation.models._common import config_cache_dir

    blob = json.dumps(dict(config), sort_keys=True, default=str)
    folder = config_cache_dir() / f"{family}-transformer-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"
    target = folder / "transformer" / "config.json"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(blob)
    return folder
