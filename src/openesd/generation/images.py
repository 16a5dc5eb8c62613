"""Image helpers shared by every task: WebUI base64 / data-URL input in, PNG bytes out."""

from __future__ import annotations

import base64
import binascii
import io

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from openesd.errors import PayloadError


def decode_image(s: str) -> Image.Image:
    """A WebUI image field (bare base64 or `data:image/...;base64,...`) as a loaded PIL image."""
    if not isinstance(s, str) or not s.strip():
        raise PayloadError("image is empty: expected a base64-encoded image or a data URL")
    text = s.strip()
    if text.startswith("data:"):
        # `data:image/png;base64,<data>`: the WebUI takes everything after the first comma.
        text = text.partition(",")[2]
    try:
        raw = base64.b64decode(text, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise PayloadError(f"image is not valid base64: {exc}") from exc
    try:
        image = Image.open(io.BytesIO(raw))
        image.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise PayloadError(f"image is not a readable image ({len(raw)} bytes after base64 decoding): {exc}") from exc
    return image


def encode_png(img: Image.Image, parameters: str | None = None) -> bytes:
    """PNG bytes of `img`; `parameters` becomes A1111's `parameters` text chunk (the infotext)."""
    info = None
    if parameters is not None:
        info = PngImagePlugin.PngInfo()
        info.add_text("parameters", parameters)
    buffer = io.BytesIO()
    img.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()
