"""`/png-info`: the text chunks of a PNG and its WebUI infotext read back into fields, as A1111 answers."""

from __future__ import annotations

import base64
import binascii
import io
import re
from typing import Any

from openesd.errors import BadRequest

# One `Key: value` of the infotext's last line; a value in quotes may hold commas.
_FIELD = re.compile(r'\s*([\w][\w \-/+]*):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')
_NEGATIVE = "Negative prompt:"


def decode_image(text: str, field: str = "image") -> bytes:
    """The bytes of a base64 image, a `data:image/…;base64,` prefix allowed; 400 naming the field."""
    data = text.split(",", 1)[1] if text.startswith("data:") and "," in text else text
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{field} is not base64 image data") from None


def png_info(text: str) -> dict[str, Any]:
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(decode_image(text)))
    except (UnidentifiedImageError, OSError, ValueError):  # ValueError: a text chunk past PIL's size limit
        raise BadRequest("image is not an image file PIL can read") from None
    except Image.DecompressionBombError as error:
        raise BadRequest(f"image is too large to read: {error}") from None
    items = {key: value for key, value in image.info.items() if isinstance(value, str | int | float)}
    infotext = str(items.pop("parameters", "") or "")
    return {"info": infotext, "items": items, "parameters": parse_infotext(infotext) if infotext else {}}


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
