"""Check a GGUF file (llama.cpp's format, used for quantised FLUX.1 / SD 3.5 transformers) from its header.

Layout (little-endian): magic `GGUF`, version (2 or 3), tensor count, metadata count, the metadata
key/values, then per tensor: name, dims (innermost first), ggml type, data offset. Nothing in it is
executable: reading it is safe, unlike a pickle. The tensor data is not read; its extent is checked
against the file size.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import IO

from openesd.modelfiles.headers import InvalidModelFile

MAGIC = b"GGUF"
VERSIONS = (2, 3)
MAX_COUNT = 1_000_000  # tensors, metadata entries or array items: far above any real file
MAX_STRING = 1 << 20
MAX_DIMS = 8
ALIGNMENT = 32  # the format's default `general.alignment`
# Metadata value types -> struct format of a scalar (8: string, 9: array are read apart).
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
# ggml type -> (elements per block, bytes per block), for the size check; other types are accepted unsized.
BLOCKS = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
    10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 30: (1, 2),
}  # fmt: skip


@dataclass(frozen=True)
class GgufHeader:
    version: int
    shapes: dict[str, tuple[int, ...]]  # torch order (outermost first), as the tensors load
    metadata: dict[str, object]  # scalar and string values only (arrays are skipped)


def read_gguf_header(stream: IO[bytes], size: int) -> GgufHeader:
    """Read and check the header of a `size`-byte GGUF file from `stream` (at its start)."""
    reader = _Reader(stream)
    if size < 24 or reader.take(4) != MAGIC:
        raise InvalidModelFile("it does not start with the GGUF magic bytes")
    version = reader.scalar("I")
    if version not in VERSIONS:
        raise InvalidModelFile(f"GGUF version {version} is not supported; valid: {', '.join(map(str, VERSIONS))}")
    tensors, entries = reader.count(), reader.count()
    metadata: dict[str, object] = {}
    for _ in range(entries):
        key = reader.string()
        value = reader.value(reader.scalar("I"))
        if value is not None:
            metadata[key] = value
    alignment = int(metadata.get("general.alignment", ALIGNMENT))  # type: ignore[call-overload]
    infos = [_tensor_info(reader) for _ in range(tensors)]
    data_start = -(-reader.position // alignment) * alignment
    shapes = {}
    for name, shape, kind, offset in infos:
        shapes[name] = shape
        _check_extent(name, shape, kind, data_start + offset, size)
    return GgufHeader(version, shapes, metadata)


def _tensor_info(reader: _Reader) -> tuple[str, tuple[int, ...], int, int]:
    name = reader.string()
    dims = reader.scalar("I")
    if dims > MAX_DIMS:
        raise InvalidModelFile(f"tensor {name!r} claims {dims} dimensions")
    shape = tuple(reversed([reader.scalar("Q") for _ in range(dims)]))
    return name, shape, reader.scalar("I"), reader.scalar("Q")


def _check_extent(name: str, shape: tuple[int, ...], kind: int, start: int, size: int) -> None:
    if kind not in BLOCKS:
        if start > size:
            raise InvalidModelFile(f"tensor {name!r} starts at byte {start} of a {size}-byte file (truncated upload?)")
        return
    per_block, block_bytes = BLOCKS[kind]
    elements = 1
    for d in shape:
        elements *= d
    end = start + -(-elements // per_block) * block_bytes
    if end > size:
        raise InvalidModelFile(f"tensor {name!r} ends at byte {end} but the file has {size} (truncated upload?)")


class _Reader:
    def __init__(self, stream: IO[bytes]):
        self.stream, self.position = stream, 0

    def take(self, count: int) -> bytes:
        data = self.stream.read(count)
        if len(data) != count:
            raise InvalidModelFile(f"the file ended inside its GGUF header (at byte {self.position + len(data)})")
        self.position += count
        return data

    def scalar(self, fmt: str) -> int:
        return struct.unpack("<" + fmt, self.take(struct.calcsize(fmt)))[0]

    def count(self) -> int:
        value = self.scalar("Q")
        if value > MAX_COUNT:
            raise InvalidModelFile(f"the header claims {value} entries (corrupt GGUF header)")
        return value

    def string(self) -> str:
        length = self.scalar("Q")
        if length > MAX_STRING:
            raise InvalidModelFile(f"the header claims a {length}-byte string (corrupt GGUF header)")
        return self.take(length).decode("utf-8", errors="replace")

    def value(self, kind: int) -> object:
        """A metadata value; arrays are read past and give None (tokenizer vocabularies, not needed here)."""
        if kind in _SCALARS:
            return struct.unpack("<" + _SCALARS[kind], self.take(struct.calcsize(_SCALARS[kind])))[0]
        if kind == 8:
            return self.string()
        if kind == 9:
            item, items = self.scalar("I"), self.count()
            for _ in range(items):
                self.value(item)
            return None
        raise InvalidModelFile(f"unknown GGUF metadata type {kind}")
