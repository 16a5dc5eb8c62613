"""Format and size of an image file read from its header alone, in pure Python.

The API checks datasets with this (it runs without Pillow, numpy or torch); decoding the pixels is the
trainer's job. Each reader also checks that the file is not cut short where the format makes it cheap
(PNG's IEND, JPEG's EOI, GIF's trailer, RIFF's and BMP's declared sizes): a truncated upload is the
common way an image goes bad between the client and the store.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

HEAD_BYTES = 64  # JPEG's frame header may follow large EXIF/ICC segments: it is looked for segment by segment
TAIL_BYTES = 1024
# Start-of-frame markers: every JPEG coding process except DHT (C4), JPG (C8) and DAC (CC).
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_STANDALONE = {0x01, *range(0xD0, 0xD9)}


class NotAnImage(ValueError):
    """The file is not a PNG, JPEG, WEBP, BMP or GIF image, or is cut short; the text says which."""


@dataclass(frozen=True)
class ImageHeader:
    format: str  # "PNG" | "JPEG" | "WEBP" | "BMP" | "GIF"
    width: int
    height: int


def read_header(path: Path) -> ImageHeader:
    """The image's format and (width, height); NotAnImage when the header or the file's end is wrong."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as file:
        head = file.read(HEAD_BYTES)
        file.seek(max(0, size - TAIL_BYTES))
        tail = file.read()
    for magic, reader in _READERS:
        if head.startswith(magic):
            header = reader(path, head, tail, size)
            if header.width < 1 or header.height < 1:
                raise NotAnImage(f"{header.format} header gives a size of {header.width}x{header.height}")
            return header
    raise NotAnImage("not a PNG, JPEG, WEBP, BMP or GIF file")


def _png(path: Path, head: bytes, tail: bytes, size: int) -> ImageHeader:
    if len(head) < 24 or head[12:16] != b"IHDR":
        raise NotAnImage("PNG without an IHDR chunk")
    width, height = struct.unpack(">II", head[16:24])
    if b"IEND" not in tail:
        raise NotAnImage("PNG cut short (no IEND chunk at its end)")
    return ImageHeader("PNG", width, height)


def _jpeg(path: Path, head: bytes, tail: bytes, size: int) -> ImageHeader:
    if b"\xff\xd9" not in tail:
        raise NotAnImage("JPEG cut short (no end-of-image marker)")
    with open(path, "rb") as file:
        file.seek(2)
        while True:
            marker = _next_marker(file)
            if marker in _JPEG_STANDALONE:
                continue
            if marker in (None, 0xD9, 0xDA):  # end of file/image or start of scan before any frame header
                raise NotAnImage("JPEG without a frame header")
            length = _unpack(">H", file.read(2))
            if marker in _JPEG_SOF:
                height, width = _unpack(">xHH", file.read(5))
                return ImageHeader("JPEG", width, height)
            file.seek(length - 2, 1)


def _next_marker(file) -> int | None:
    byte = file.read(1)
    if byte != b"\xff":
        return None
    while byte == b"\xff":  # fill bytes
        byte = file.read(1)
    return byte[0] if byte else None


def _webp(path: Path, head: bytes, tail: bytes, size: int) -> ImageHeader:
    if len(head) < 30 or head[8:12] != b"WEBP":
        raise NotAnImage("RIFF file that is not a WEBP image")
    if struct.unpack("<I", head[4:8])[0] + 8 > size:
        raise NotAnImage("WEBP cut short (smaller than its RIFF header says)")
    chunk, data = head[12:16], head[20:30]
    if chunk == b"VP8 " and data[3:6] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[6:10])
        return ImageHeader("WEBP", width & 0x3FFF, height & 0x3FFF)
    if chunk == b"VP8L" and data[0] == 0x2F:
        bits = struct.unpack("<I", data[1:5])[0]
        return ImageHeader("WEBP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X":
        return ImageHeader("WEBP", int.from_bytes(data[4:7], "little") + 1, int.from_bytes(data[7:10], "little") + 1)
    raise NotAnImage(f"WEBP with an unknown first chunk {chunk!r}")


def _bmp(path: Path, head: bytes, tail: bytes, size: int) -> ImageHeader:
    if len(head) < 26:
        raise NotAnImage("BMP header cut short")
    pixels_at, dib_size = struct.unpack("<10xI I", head[:18])
    if dib_size == 12:  # OS/2 BITMAPCOREHEADER
        width, height = struct.unpack("<HH", head[18:22])
    else:
        width, height = struct.unpack("<ii", head[18:26])
    if pixels_at >= size:
        raise NotAnImage("BMP cut short (its pixel data starts past the end of the file)")
    return ImageHeader("BMP", width, abs(height))  # a negative height means rows stored top-down


def _gif(path: Path, head: bytes, tail: bytes, size: int) -> ImageHeader:
    if len(head) < 10:
        raise NotAnImage("GIF header cut short")
    width, height = struct.unpack("<HH", head[6:10])
    if not tail.rstrip(b"\x00").endswith(b";"):
        raise NotAnImage("GIF cut short (no trailer)")
    return ImageHeader("GIF", width, height)


def _unpack(layout: str, data: bytes) -> tuple | int:
    try:
        values = struct.unpack(layout, data)
    except struct.error:
        raise NotAnImage("JPEG cut short inside a marker segment") from None
    return values[0] if len(values) == 1 else values


_READERS = (
    (b"\x89PNG\r\n\x1a\n", _png),
    (b"\xff\xd8\xff", _jpeg),
    (b"RIFF", _webp),
    (b"BM", _bmp),
    (b"GIF87a", _gif),
    (b"GIF89a", _gif),
)
