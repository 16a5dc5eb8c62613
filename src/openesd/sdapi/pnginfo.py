"""`/png-info`: the text chunks of a PNG and its WebUI infotext read back into fields, as A1111 answers."""

from __future__ import annotations

import base64
import binascii
import re
import struct
import zlib
from typing import Any

from openesd.errors import BadRequest

# One `Key: value` of the infotext's last line; a value in quotes may hold commas.
_FIELD = re.compile(r'\s*([\w][\w \-/+]*):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')
_NEGATIVE = "Negative prompt:"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_TEXT_BYTES = 1024**2  # PIL's own limit on one text chunk


def decode_image(text: str, field: str = "image") -> bytes:
    """The bytes of a base64 image, a `data:image/…;base64,` prefix allowed; 400 naming the field."""
    data = text.split(",", 1)[1] if text.startswith("data:") and "," in text else text
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{field} is not base64 image data") from None


def png_info(text: str) -> dict[str, Any]:
    """A1111's PNGInfoResponse for a base64 PNG: its text chunks read here, in pure Python (the API runs
    without PIL, docs/cluster.md), the `parameters` infotext parsed into fields."""
    items = png_text(decode_image(text))
    infotext = items.pop("parameters", "")
    return {"info": infotext, "items": items, "parameters": parse_infotext(infotext) if infotext else {}}


def png_text(data: bytes) -> dict[str, str]:
    """The tEXt, zTXt and iTXt chunks of a PNG (keyword -> text); 400 when it is not a PNG."""
    if not data.startswith(_PNG_SIGNATURE):
        raise BadRequest("image is not a PNG: png-info reads the text chunks of PNG files only")
    found: dict[str, str] = {}
    offset = len(_PNG_SIGNATURE)
    while offset + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        body = data[offset + 8 : offset + 8 + length]
        if len(body) < length or kind == b"IEND":
            break
        if kind in _TEXT_CHUNKS:
            keyword, value = _TEXT_CHUNKS[kind](body)
            found[keyword] = value
        offset += 12 + length  # length, type, data, CRC
    return found


def _text(body: bytes) -> tuple[str, str]:
    keyword, _, value = body.partition(b"\0")
    return keyword.decode("latin-1"), value.decode("latin-1")


def _ztext(body: bytes) -> tuple[str, str]:
    keyword, _, rest = body.partition(b"\0")
    return keyword.decode("latin-1"), _inflate(rest[1:]).decode("latin-1")  # rest[0]: the method, 0


def _itext(body: bytes) -> tuple[str, str]:
    keyword, _, rest = body.partition(b"\0")
    compressed, rest = rest[:1] == b"\1", rest[2:]  # flag, method
    _language, _, rest = rest.partition(b"\0")
    _translated, _, value = rest.partition(b"\0")
    return keyword.decode("latin-1"), (_inflate(value) if compressed else value).decode("utf-8", "replace")


def _inflate(data: bytes) -> bytes:
    """A compressed text chunk, refused past `MAX_TEXT_BYTES` (a small chunk may inflate to gigabytes)."""
    inflater = zlib.decompressobj()
    try:
        text = inflater.decompress(data, MAX_TEXT_BYTES)
    except zlib.error:
        raise BadRequest("image has a compressed text chunk that does not decompress") from None
    if inflater.unconsumed_tail:
        raise BadRequest(f"image has a text chunk larger than {MAX_TEXT_BYTES} bytes")
    return text


_TEXT_CHUNKS = {b"tEXt": _text, b"zTXt": _ztext, b"iTXt": _itext}


def parse_infotext(infotext: str) -> dict[str, Any]:
    """`Prompt`, `Negative prompt` and the `Key: value` fields of the last line (values as strings, quoted
    ones unquoted; `Size-1`/`Size-2` from `Size: WxH`, as the WebUI splits it)."""
    lines = infotext.strip().split("\n")
    fields: dict[str, Any] = {}
    last = lines[-1] if len(_FIELD.findall(lines[-1])) >= 3 else ""
    if last:
        lines = lines[:-1]
    prompt: list[str] = []
    negative: list[str] = []
    in_negative = False
    for line in lines:
        if line.startswith(_NEGATIVE):
            in_negative, line = True, line[len(_NEGATIVE) :].strip()
        (negative if in_negative else prompt).append(line)
    fields["Prompt"], fields["Negative prompt"] = "\n".join(prompt), "\n".join(negative)
    for key, value in _FIELD.findall(last):
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        fields[key.strip()] = value
    width, x, height = str(fields.get("Size", "")).partition("x")
    if x and width.isdigit() and height.isdigit():
        fields["Size-1"], fields["Size-2"] = width, height
    return fields
