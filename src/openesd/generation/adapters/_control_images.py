"""Control images as sd-webui-controlnet makes them: decode, preprocess (preprocessors/), resize by the unit's mode."""

from __future__ import annotations

from typing import Any

from openesd.errors import PayloadError
from openesd.generation.adapters import preprocessors
from openesd.generation.images import decode_image

MODULES = tuple(preprocessors.MODULES)
RESIZE_MODES = {
    "just resize": 0,
    "crop and resize": 1,
    "resize and fill": 2,
    # older names of the same three modes, still sent by some clients
    "scale to fit (inner fit)": 1,
    "envelope (outer fit)": 2,
    "inner fit (scale to fit)": 1,
    "outer fit (shrink to fit)": 2,
}
DEFAULT_RES = 512


def unit_image(unit: dict, index: int, init_image: Any) -> Any:
    """The unit's RGB image as a uint8 HxWx3 array; a mask whitens what it leaves out, as the extension does."""
    import numpy as np

    raw = unit.get("image") if unit.get("image") is not None else unit.get("input_image")
    mask = unit.get("mask_image") or unit.get("mask")  # newer extension versions send the mask beside the image
    if isinstance(raw, dict):
        raw, mask = raw.get("image"), raw.get("mask") or mask
    if raw is None or raw == "":
        if init_image is None:
            raise PayloadError(
                f"ControlNet unit {index} is enabled but has no image, and there is no init image to use"
            )
        rgb = np.asarray(init_image.convert("RGB"))
    else:
        rgb = np.asarray(_decode(raw, index).convert("RGB"))
    if mask:
        alpha = (
            np.asarray(_decode(mask, index).convert("L").resize(rgb.shape[1::-1])).astype(np.float32)[..., None] / 255
        )
        rgb = (rgb.astype(np.float32) * alpha + 255 * (1 - alpha)).clip(0, 255).astype(np.uint8)
    return rgb


def _decode(value: Any, index: int) -> Any:
    if not isinstance(value, str):
        raise PayloadError(
            f"ControlNet unit {index} image must be a base64 string or data URL, got {type(value).__name__}"
        )
    return decode_image(value)


def resize_mode(value: Any, index: int) -> int:
    if isinstance(value, int) and value in (0, 1, 2):
        return value
    if isinstance(value, str) and value.strip().lower() in RESIZE_MODES:
        return RESIZE_MODES[value.strip().lower()]
    valid = "'Just Resize', 'Crop and Resize', 'Resize and Fill' (or 0, 1, 2)"
    raise PayloadError(f"ControlNet unit {index} resize_mode {value!r} is not valid; valid: {valid}")


def control_map(
    rgb: Any,
    module: str,
    unit: dict,
    width: int,
    height: int,
    mode: int,
    files: list[Any] | None = None,
    device: Any = None,
    seed: int | None = None,
) -> Any:
    """Preprocess (`module` as `preprocessors.canonical` names it) and resize to (width, height); a PIL RGB image.

    `files` are the job's ControlNet-annotator files; `seed` seeds the modules that draw random numbers.
    """
    from PIL import Image

    resolution = _resolution(unit, rgb, width, height, mode)
    detected = preprocessors.preprocess(rgb, module, unit, resolution, list(files or []), device, seed)
    return Image.fromarray(fit(detected, width, height, mode))


def _resolution(unit: dict, rgb: Any, width: int, height: int, mode: int) -> int:
    if unit.get("pixel_perfect"):
        # The extension's pixel-perfect rule: the image's shorter side scaled as the resize mode will.
        raw_h, raw_w = rgb.shape[:2]
        k0, k1 = height / raw_h, width / raw_w
        k = min(k0, k1) if mode == 2 else max(k0, k1)
        return int(round(k * min(raw_h, raw_w)))
    res = unit.get("processor_res", -1)
    return DEFAULT_RES if res is None or res in (-1, "-1") else max(64, int(res))


def fit(img: Any, width: int, height: int, mode: int) -> Any:
    """Just Resize stretches; Crop and Resize covers then centre-crops; Resize and Fill fits then pads."""
    import numpy as np

    h, w = img.shape[:2]
    if mode == 0:
        return _scale(img, width, height)
    k = max(height / h, width / w) if mode == 1 else min(height / h, width / w)
    sw, sh = max(1, int(round(w * k))), max(1, int(round(h * k)))
    scaled = _scale(img, sw, sh)
    if mode == 1:
        top, left = (sh - height) // 2, (sw - width) // 2
        return scaled[top : top + height, left : left + width]
    border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]], axis=0)
    canvas = np.tile(np.median(border, axis=0).astype(img.dtype)[None, None], (height, width, 1))
    top, left = (height - sh) // 2, (width - sw) // 2
    canvas[top : top + sh, left : left + sw] = scaled
    return canvas


def _scale(img: Any, width: int, height: int) -> Any:
    import cv2
    import numpy as np

    if img.shape[1] == width and img.shape[0] == height:
        return img
    shrink = width * height < img.shape[0] * img.shape[1]
    out = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    if set(np.unique(img)) <= {0, 255}:
        out = np.where(out > 127, 255, 0).astype(np.uint8)  # keep edge maps binary after resizing
    return out
