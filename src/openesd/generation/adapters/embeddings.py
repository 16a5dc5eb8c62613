"""Textual-inversion embeddings in the WebUI's `.pt` / `.safetensors` formats, read without running pickled code."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from openesd.errors import ModelError

SUFFIXES = (".safetensors", ".pt", ".bin")
SDXL_KEYS = ("clip_l", "clip_g")


@dataclass(frozen=True)
class Embedding:
    """One embedding: its prompt word and its vectors, per text encoder for SDXL files."""

    name: str
    vectors: dict[str, Any]  # "clip_l"/"clip_g" for SDXL files, "*" for single-encoder files (n, dim)

    def for_encoder(self, role: str, width: int) -> Any:
        """The (n, width) vectors this embedding gives an encoder ("clip_l", "clip_g" or "clip")."""
        candidates = [self.vectors[role]] if role in self.vectors else list(self.vectors.values())
        for tensor in candidates:
            if tensor.shape[-1] == width:
                return tensor
        dims = ", ".join(str(t.shape[-1]) for t in self.vectors.values())
        raise ModelError(
            f"embedding {self.name!r} has vectors of width {dims}, but this model's text encoder "
            f"needs width {width}; it was made for another model family"
        )


def load_embeddings(paths: list[Path]) -> list[Embedding]:
    """Read each file once (cached by path, size and mtime); an unknown layout fails naming the file."""
    loaded = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"embedding file {path.name!r} not found")
        stat = path.stat()
        loaded.append(_load_cached(str(path), stat.st_size, stat.st_mtime_ns))
    return loaded


@lru_cache(maxsize=64)
def _load_cached(path: str, size: int, mtime_ns: int) -> Embedding:
    file = Path(path)
    data = _read(file)
    return Embedding(name=file.stem, vectors=_vectors(data, file.name))


def _read(path: Path) -> Any:
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelError(f"embedding file {path.name!r} is not a readable safetensors file: {exc}") from exc
    if suffix in (".pt", ".bin"):
        return _read_weights_only(path)
    raise ModelError(f"embedding file {path.name!r} has an unknown format {suffix!r}; valid: {', '.join(SUFFIXES)}")


def _read_weights_only(path: Path) -> Any:
    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError, TypeError) as exc:
        raise ModelError(
            f"embedding file {path.name!r} was refused: it holds pickled objects other than tensors, "
            f"and pickled code is never run; convert it to .safetensors ({type(exc).__name__})"
        ) from exc


def _vectors(data: Any, filename: str) -> dict[str, Any]:
    """The WebUI's four layouts: string_to_param, {token: tensor}, clip_l/clip_g, emb_params."""
    import torch

    if not isinstance(data, dict):
        raise ModelError(f"embedding file {filename!r} holds no dictionary of vectors")
    if isinstance(data.get("string_to_param"), dict):
        params = data["string_to_param"]
        if len(params) != 1:
            raise ModelError(f"embedding file {filename!r} holds {len(params)} vector sets; expected 1")
        return {"*": _matrix(next(iter(params.values())), filename)}
    if all(key in data for key in SDXL_KEYS):
        return {key: _matrix(data[key], filename) for key in SDXL_KEYS}
    if "emb_params" in data:
        return {"*": _matrix(data["emb_params"], filename)}
    tensors = [v for v in data.values() if isinstance(v, torch.Tensor)]
    if len(data) == 1 and len(tensors) == 1:  # diffusers' learned_embeds: {"<token>": tensor}
        return {"*": _matrix(tensors[0], filename)}
    found = ", ".join(sorted(map(str, data))[:8])
    raise ModelError(
        f"embedding file {filename!r} has no known layout (keys: {found}); expected string_to_param, "
        f"emb_params, clip_l + clip_g, or one tensor"
    )


def _matrix(tensor: Any, filename: str) -> Any:
    import torch

    if not isinstance(tensor, torch.Tensor) or tensor.ndim not in (1, 2) or tensor.numel() == 0:
        raise ModelError(f"embedding file {filename!r} holds vectors of an unusable shape")
    tensor = tensor.detach().to(torch.float32)
    return tensor.unsqueeze(0) if tensor.ndim == 1 else tensor
