"""Check a safetensors file from its header and its size alone: the tensor bytes are never read.

Layout: 8-byte little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets}},
then the tensor data; `data_offsets` count from the end of the header.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import IO

MAX_HEADER_BYTES = 100_000_000  # the safetensors library's own limit
# Bits per element; a dtype not listed here is accepted without the size check.
DTYPE_BITS = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "I64": 64,
    "U64": 64,
    "F64": 64,
    "C64": 64,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
}


class InvalidModelFile(ValueError):
    """The file is not what its extension says; the message says what is wrong."""


@dataclass(frozen=True)
class SafetensorsHeader:
    shapes: dict[str, tuple[int, ...]]
    metadata: dict[str, str]
    data_bytes: int  # bytes the tensors use, from the offsets


def read_safetensors_header(stream: IO[bytes], size: int) -> SafetensorsHeader:
    """Read the header from `stream` (positioned at the start of a `size`-byte file) and check it."""
    if size < 8:
        raise InvalidModelFile(f"the file is {size} bytes, too short for a safetensors header")
    length = int.from_bytes(_read(stream, 8), "little")
    if length > MAX_HEADER_BYTES or 8 + length > size:
        raise InvalidModelFile(
            f"the header length field says {length} bytes but the file has {size - 8} after it "
            "(truncated or not a safetensors file)"
        )
    try:
        header = json.loads(_read(stream, length))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidModelFile(f"the header is not JSON ({error})") from None
    if not isinstance(header, dict):
        raise InvalidModelFile("the header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    available = size - 8 - length
    shapes, end = {}, 0
    for name, info in header.items():
        shapes[name], tensor_end = _check_tensor(name, info, available)
        end = max(end, tensor_end)
    if end != available:  # the safetensors loader refuses trailing bytes too
        raise InvalidModelFile(f"the tensors use {end} bytes of data but the file has {available} after the header")
    return SafetensorsHeader(shapes, metadata if isinstance(metadata, dict) else {}, end)


def _read(stream: IO[bytes], count: int) -> bytes:
    data = stream.read(count)
    if len(data) != count:
        raise InvalidModelFile(f"the file ended while reading its header ({len(data)} of {count} bytes)")
    return data


def _check_tensor(name: str, info: object, available: int) -> tuple[tuple[int, ...], int]:
    """The tensor's shape and end offset; its byte range must lie in the data and fit dtype × shape."""
    if not isinstance(info, dict):
        raise InvalidModelFile(f"tensor {name!r} has no dtype/shape/data_offsets entry")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise InvalidModelFile(f"tensor {name!r} has an invalid shape {shape!r}")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) for o in offsets)
        or not 0 <= offsets[0] <= offsets[1]
    ):
        raise InvalidModelFile(f"tensor {name!r} has invalid data_offsets {offsets!r}")
    begin, end = offsets
    if end > available:
        raise InvalidModelFile(
            f"tensor {name!r} ends at byte {end} of the data but the file holds only {available} bytes of "
            "tensor data (truncated upload?)"
        )
    bits = DTYPE_BITS.get(str(dtype))
    if bits is not None and math.prod(shape) * bits != (end - begin) * 8:
        raise InvalidModelFile(
            f"tensor {name!r} ({dtype} {shape}) needs {math.ceil(math.prod(shape) * bits / 8)} bytes "
            f"but its data_offsets span {end - begin}"
        )
    return tuple(shape), end
