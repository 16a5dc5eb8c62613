"""Which diffusers class a family's transformer is, and its single file's keys turned into that class's."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from openesd.errors import ModelError

CLASSES = {"flux": "FluxTransformer2DModel", "sd3": "SD3Transformer2DModel"}


def convert(family: str, state: Mapping[str, Any], source: Any = None) -> dict[str, Any]:
    """diffusers keys for a BFL FLUX.1 or a Stability SD 3.5 state dict (prefixed or not)."""
    name = repr(source.name) if isinstance(source, Path) else "the transformer's tensors"
    try:
        if family == "flux":
            from openesd.generation.quant._bfl import convert_flux

            return convert_flux(state)
        from diffusers.loaders.single_file_utils import convert_sd3_transformer_checkpoint_to_diffusers

        return convert_sd3_transformer_checkpoint_to_diffusers(dict(state))
    except (KeyError, ValueError, IndexError, RuntimeError) as exc:
        what = "FLUX.1 (BFL layout)" if family == "flux" else "SD 3.5"
        why = f"it lacks the tensor {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ModelError(f"{name} is not a {what} transformer: {why}") from exc
