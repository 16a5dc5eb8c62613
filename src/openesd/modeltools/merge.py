"""Checkpoint merging with the A1111 merger's semantics (weighted sum, add difference, no interpolation).

Tensors are read and written one at a time (safetensors `safe_open`, `.ckpt` through torch's
weights-only loader, memory-mapped), so memory stays around the largest tensor, not the model.
The output is always a `.safetensors` file, written in a streaming pass after its header."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openesd.errors import ModelError

INTERPOLATIONS = ("No interpolation", "Weighted sum", "Add difference")
# Copied from A unmerged, as the WebUI does (an integer index buffer in older checkpoints).
SKIP_ON_MERGE = ("cond_stage_model.transformer.text_model.embeddings.position_ids",)
VAE_PREFIX = "first_stage_model."


@dataclass
class MergeOptions:
    interp_method: str = "Weighted sum"
    multiplier: float = 0.3
    save_as_half: bool = False
    discard_weights: str = ""  # a regex: matching tensor names are left out of the result
    metadata: dict[str, str] = field(default_factory=dict)


class TensorSource:
    """Tensor names, layouts and values of one file, read lazily."""

    def __init__(self, handle: Any, tensors: dict[str, Any] | None = None):
        self._handle, self._tensors = handle, tensors
        self._keys = list(tensors) if tensors is not None else list(handle.keys())
        self._known = set(self._keys)

    def keys(self) -> list[str]:
        return self._keys

    def __contains__(self, key: str) -> bool:
        return key in self._known

    def shape(self, key: str) -> tuple[int, ...]:
        if self._tensors is not None:
            return tuple(self._tensors[key].shape)
        return tuple(self._handle.get_slice(key).get_shape())

    def dtype(self, key: str) -> str:
        """The safetensors dtype code (`F32`, `F16`, `I64`, …)."""
        if self._tensors is not None:
            return _code(self._tensors[key].dtype, key)
        return self._handle.get_slice(key).get_dtype()

    def get(self, key: str) -> Any:
        return self._tensors[key] if self._tensors is not None else self._handle.get_tensor(key)


@contextmanager
def open_tensors(path: Path) -> Iterator[TensorSource]:
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt", device="cpu") as handle:
                yield TensorSource(handle)
        except (OSError, ValueError) as exc:  # SafetensorError is a ValueError subclass in some versions
            raise ModelError(f"model file {path.name!r} is not a readable safetensors file: {exc}") from exc
        return
    yield TensorSource(None, load_weights_only(path))


def load_pickled(path: Path, what: str = "model file") -> Any:
    """What a `.ckpt`/`.pt`/`.bin` file holds, through torch's weights-only loader (no pickled code runs),
    memory-mapped where the file allows; a file holding anything else fails as a ModelError naming `what`."""
    import pickle

    import torch

    try:
        try:
            return torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # legacy (non-zip) serialisation cannot be memory-mapped
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError, TypeError) as exc:
        raise ModelError(
            f"{what} {path.name!r} was refused: it holds objects other than tensors, and "
            f"pickled code is never run; convert it to .safetensors ({type(exc).__name__})"
        ) from exc


def load_weights_only(path: Path) -> dict[str, Any]:
    """The tensors of a `.ckpt`/`.pt` file (`load_pickled`); `state_dict` wrappers unwrapped. The worker's
    loader uses it too."""
    import torch

    state = load_pickled(path)
    while isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ModelError(f"model file {path.name!r} holds no state dict")
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def merge_checkpoints(
    primary: Path,
    output: Path,
    options: MergeOptions,
    secondary: Path | None = None,
    tertiary: Path | None = None,
    vae: Path | None = None,
) -> Path:
    """Merge A with B (and C) tensor by tensor into `output` (a .safetensors file)."""
    # 1. validate the inputs the method needs, as the WebUI merger does
    if options.interp_method not in INTERPOLATIONS:
        raise ModelError(f"interp_method {options.interp_method!r} is not one of {', '.join(INTERPOLATIONS)}")
    if options.interp_method != "No interpolation" and secondary is None:
        raise ModelError("Failed: Missing Secondary Model")
    if options.interp_method == "Add difference" and tertiary is None:
        raise ModelError("Failed: Missing Tertiary Model")
    discard = re.compile(options.discard_weights) if options.discard_weights else None
    with ExitStack() as stack:
        a = stack.enter_context(open_tensors(primary))
        b = stack.enter_context(open_tensors(secondary)) if options.interp_method != "No interpolation" else None
        c = stack.enter_context(open_tensors(tertiary)) if options.interp_method == "Add difference" else None
        v = stack.enter_context(open_tensors(vae)) if vae is not None else None
        # 2. what each output tensor is made of; names come from A, minus the discarded ones
        keys = [k for k in a.keys() if not (discard and discard.search(k))]

        def source_of(key: str) -> tuple[TensorSource, str]:
            vae_key = key.removeprefix(VAE_PREFIX)
            if v is not None and key.startswith(VAE_PREFIX) and vae_key in v:
                return v, vae_key  # baked-in VAE: its weights replace the checkpoint's
            return a, key

        def layout(key: str) -> tuple[str, list[int]]:
            source, name = source_of(key)
            dtype = source.dtype(name)
            return ("F16" if options.save_as_half and dtype in FLOAT_CODES else dtype), list(source.shape(name))

        def tensor(key: str) -> Any:
            source, name = source_of(key)
            value = source.get(name) if source is v else _merged(key, a, b, c, options)
            return _to_output(value, options.save_as_half)

        # 3. write the header, then each tensor, computed one at a time
        return _write_streaming(output, keys, layout, tensor, options.metadata)


def _merged(key: str, a: TensorSource, b: TensorSource | None, c: TensorSource | None, options: MergeOptions) -> Any:
    import torch

    theta0 = a.get(key)
    if b is None or key in SKIP_ON_MERGE or not theta0.is_floating_point():
        return theta0
    if key not in b or b.shape(key) != tuple(theta0.shape):
        return theta0  # missing or reshaped in B: A's tensor, as the WebUI keeps it
    m = float(options.multiplier)
    work = torch.float32 if theta0.dtype in (torch.float16, torch.bfloat16) else theta0.dtype
    a_t, b_t = theta0.to(work), b.get(key).to(work)
    if c is None:
        merged = a_t + (b_t - a_t) * m  # A·(1 − M) + B·M
    elif key not in c or c.shape(key) != tuple(theta0.shape):
        return theta0
    else:
        merged = a_t + (b_t - c.get(key).to(work)) * m  # A + (B − C)·M
    return merged.to(theta0.dtype)


def _to_output(value: Any, half: bool) -> Any:
    import torch

    if half and value.is_floating_point():
        value = value.to(torch.float16)
    return value.contiguous()


_CODES = {
    "float64": "F64",
    "float32": "F32",
    "float16": "F16",
    "bfloat16": "BF16",
    "int64": "I64",
    "int32": "I32",
    "int16": "I16",
    "int8": "I8",
    "uint8": "U8",
    "bool": "BOOL",
}
FLOAT_CODES = ("F64", "F32", "F16", "BF16")
_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def _code(dtype: Any, key: str) -> str:
    code = _CODES.get(str(dtype).removeprefix("torch."))
    if code is None:
        raise ModelError(f"tensor {key} has dtype {dtype}, which a safetensors file cannot hold")
    return code


def _write_streaming(output: Path, keys: list[str], layout, tensor, metadata: dict[str, str]) -> Path:
    """Safetensors layout (8-byte header size, JSON header, raw little-endian data), one tensor in memory."""
    import math

    import torch

    entries: dict[str, Any] = {}
    offset = 0
    for key in keys:
        dtype, shape = layout(key)
        if dtype not in _SIZES:
            raise ModelError(f"tensor {key} has dtype {dtype}, which the merger does not write")
        size = math.prod(shape) * _SIZES[dtype]
        entries[key] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    if metadata:
        entries["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    header = json.dumps(entries, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with partial.open("wb") as stream:
        stream.write(len(header).to_bytes(8, "little"))
        stream.write(header)
        for key in keys:
            value = tensor(key)
            expected = entries[key]
            if _code(value.dtype, key) != expected["dtype"] or list(value.shape) != expected["shape"]:
                raise ModelError(f"tensor {key} changed layout while merging")  # a bug, never silent
            if value.numel():
                stream.write(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    partial.replace(output)
    return output
