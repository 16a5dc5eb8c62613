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


def resize_image(mode: int, image: Image.Image, width: int, height: int) -> Image.Image:
    """A1111 `images.resize_image` for modes 0..2 (mode 3 resizes here and the latent path does the rest)."""
    if mode in (0, 3):
        return image.resize((width, height), Image.LANCZOS)
    ratio, src_ratio = width / height, image.width / image.height
    if mode == 1:
        w = width if ratio > src_ratio else image.width * height // image.height
        h = height if ratio <= src_ratio else image.height * width // image.width
        resized = image.resize((w, h), Image.LANCZOS)
        canvas = Image.new("RGB", (width, height))
        canvas.paste(resized, box=(width // 2 - w // 2, height // 2 - h // 2))
        return canvas
    return _resize_and_fill(image, width, height, ratio, src_ratio)


def _resize_and_fill(image: Image.Image, width: int, height: int, ratio: float, src_ratio: float) -> Image.Image:
    w = width if ratio < src_ratio else image.width * height // image.height
    h = height if ratio >= src_ratio else image.height * width // image.width
    resized = image.resize((w, h), Image.LANCZOS)
    canvas = Image.new("RGB", (width, height))
    canvas.paste(resized, box=(width // 2 - w // 2, height // 2 - h // 2))
    # Stretch the outermost rows/columns into the empty bands, as the WebUI does.
    if ratio < src_ratio:
        fill = height // 2 - h // 2
        if fill > 0:
            canvas.paste(resized.resize((width, fill), box=(0, 0, width, 0)), box=(0, 0))
            canvas.paste(
                resized.resize((width, fill), box=(0, resized.height, width, resized.height)), box=(0, fill + h)
            )
    elif ratio > src_ratio:
        fill = width // 2 - w // 2
        if fill > 0:
            canvas.paste(resized.resize((fill, height), box=(0, 0, 0, height)), box=(0, 0))
            canvas.paste(
                resized.resize((fill, height), box=(resized.width, 0, resized.width, height)), box=(fill + w, 0)
            )
    return canvas
