"""`.ckpt` / `.pt` / `.pth` / `.bin` files: torch's zip or legacy pickle containers.

Their content is checked with torch's weights-only loader where torch is installed (the worker extra);
the API-only install can tell only the container from its first bytes.
"""

from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path

from openesd.modelfiles.headers import InvalidModelFile

TORCH_EXTENSIONS = (".ckpt", ".pt", ".pth", ".bin")


def container_of(head: bytes) -> str | None:
    """ "zip" (torch.save since 1.6), "pickle" (older torch.save, protocol 2-5) or None."""
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"
    return None


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def weights_only_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the state dict, loaded with `weights_only=True` (zip files memory-mapped, not read)."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as error:  # torch raises many types for a bad file; all mean the same to the user
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InvalidModelFile(f"torch's weights-only loader refused it: {reason}") from None
    while isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise InvalidModelFile(f"it holds a {type(state).__name__}, not a state dict")
    return {str(k): tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
