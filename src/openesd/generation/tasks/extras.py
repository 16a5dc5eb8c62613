"""The WebUI's extras tab: `extra-single-image` and `extra-batch-images` (upscaling, as A1111 does it)."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from typing import Any

from PIL import Image

from openesd.errors import GenerationError, PayloadError, UnsupportedFeature
from openesd.generation.images import decode_image, encode_png
from openesd.generation.tasks.upscalers import Upscalers, default_upscalers, resolve_upscaler
from openesd.generation.types import GenerationResult, ModelFiles

EXTRAS_TASKS = ("extra-single-image", "extra-batch-images")
RESIZE_BY, RESIZE_TO = 0, 1
# The WebUI API's bounds for `upscaling_resize` (ExtrasBaseRequest).
MAX_RESIZE_FACTOR = 8.0


@dataclass(frozen=True)
class ExtrasOptions:
    """The upscaling part of an extras payload, validated, with the WebUI API's defaults."""

    resize_mode: int = RESIZE_BY
    factor: float = 2.0
    width: int = 512
    height: int = 512
    crop: bool = True
    upscaler_1: str = "None"
    upscaler_2: str = "None"
    upscaler_2_visibility: float = 0.0


def run_extras(task: str, payload: dict, models: ModelFiles, upscalers: Upscalers | None = None) -> GenerationResult:
    """Upscale the payload's image(s); the result carries the WebUI's `html_info` summary."""
    # 1. Validate everything before touching an image, so a bad payload fails fast and whole.
    if task not in EXTRAS_TASKS:
        raise UnsupportedFeature(f"Extras task '{task}' is not one of: {', '.join(EXTRAS_TASKS)}")
    _refuse_face_restoration(payload)
    options = parse_options(payload)
    for name in (options.upscaler_1, options.upscaler_2):
        resolve_upscaler(name, models)
    images = _input_images(task, payload)

    # 2. Upscale each image; the WebUI reports the infotext of the last one.
    upscalers = upscalers or default_upscalers()
    outputs, infotext = [], ""
    for image in images:
        result, info = upscale_image(image, options, models, upscalers)
        outputs.append(encode_png(result))
        infotext = _infotext(info)
    html_info = _plaintext_to_html(infotext)
    return GenerationResult(images=outputs, parameters=None, info=None, html_info=html_info)


def upscale_image(
    image: Image.Image, options: ExtrasOptions, models: ModelFiles, upscalers: Upscalers
) -> tuple[Image.Image, dict[str, Any]]:
    """One image through the WebUI's "Upscale" postprocessing step, and the infotext it adds."""
    image = image.convert("RGB")
    info: dict[str, Any] = {}
    if options.upscaler_1 == "None":
        # The WebUI skips the whole step when no first upscaler is chosen.
        return image, info
    upscaled = _upscale_once(image, options.upscaler_1, options, models, upscalers, info)
    info["Postprocess upscaler"] = options.upscaler_1
    if options.upscaler_2 != "None" and options.upscaler_2_visibility > 0:
        second = _upscale_once(image, options.upscaler_2, options, models, upscalers, info)
        upscaled = Image.blend(upscaled, second.convert(upscaled.mode), options.upscaler_2_visibility)
        info["Postprocess upscaler 2"] = options.upscaler_2
    return upscaled, info


def parse_options(payload: dict) -> ExtrasOptions:
    defaults = ExtrasOptions()
    options = ExtrasOptions(
        resize_mode=_number(payload, "resize_mode", defaults.resize_mode, int),
        factor=_number(payload, "upscaling_resize", defaults.factor, float),
        width=_number(payload, "upscaling_resize_w", defaults.width, int),
        height=_number(payload, "upscaling_resize_h", defaults.height, int),
        crop=bool(payload.get("upscaling_crop", defaults.crop)),
        upscaler_1=_name(payload, "upscaler_1"),
        upscaler_2=_name(payload, "upscaler_2"),
        upscaler_2_visibility=_number(payload, "extras_upscaler_2_visibility", 0.0, float),
    )
    if options.resize_mode not in (RESIZE_BY, RESIZE_TO):
        raise PayloadError(
            f"resize_mode must be 0 (scale by upscaling_resize) or 1 (to upscaling_resize_w × "
            f"upscaling_resize_h), got {options.resize_mode}"
        )
    if options.resize_mode == RESIZE_BY and not 1.0 <= options.factor <= MAX_RESIZE_FACTOR:
        raise PayloadError(f"upscaling_resize must be between 1 and {MAX_RESIZE_FACTOR:g}, got {options.factor}")
    if options.resize_mode == RESIZE_TO and (options.width <= 0 or options.height <= 0):
        raise PayloadError(
            f"upscaling_resize_w and upscaling_resize_h must be positive, got {options.width}x{options.height}"
        )
    if not 0.0 <= options.upscaler_2_visibility <= 1.0:
        raise PayloadError(f"extras_upscaler_2_visibility must be between 0 and 1, got {options.upscaler_2_visibility}")
    return options


def _upscale_once(
    image: Image.Image,
    name: str,
    options: ExtrasOptions,
    models: ModelFiles,
    upscalers: Upscalers,
    info: dict[str, Any],
) -> Image.Image:
    if options.resize_mode == RESIZE_BY:
        info["Postprocess upscale by"] = options.factor
        return upscalers.upscale(image, name, options.factor, models)
    info["Postprocess upscale to"] = f"{options.width}x{options.height}"
    # Cover the target box keeping the aspect ratio, as the WebUI does; `max` guards against a
    # float product rounding one pixel short of the box.
    scale = max(options.width / image.width, options.height / image.height)
    width = max(round(image.width * scale), options.width)
    height = max(round(image.height * scale), options.height)
    upscaled = upscalers.upscale_to(image, name, width, height, models)
    if not options.crop:
        return upscaled
    info["Postprocess crop to"] = f"{options.width}x{options.height}"
    return _center_crop(upscaled, options.width, options.height)


def _center_crop(image: Image.Image, width: int, height: int) -> Image.Image:
    left, top = (image.width - width) // 2, (image.height - height) // 2
    return image.crop((left, top, left + width, top + height))


def _refuse_face_restoration(payload: dict) -> None:
    for key in ("gfpgan_visibility", "codeformer_visibility"):
        if _number(payload, key, 0.0, float) > 0:
            raise UnsupportedFeature(
                f"{key} is {payload[key]}: face restoration (GFPGAN, CodeFormer) is not supported by "
                "OpenESD's worker; set gfpgan_visibility and codeformer_visibility to 0"
            )


def _input_images(task: str, payload: dict) -> list[Image.Image]:
    if task == "extra-single-image":
        return [decode_image(payload.get("image") or "")]
    entries = payload.get("imageList")
    if not isinstance(entries, list) or not entries:
        raise PayloadError('imageList must be a non-empty list of {"data": <base64>, "name": <file name>}')
    images = []
    for index, entry in enumerate(entries):
        data = entry.get("data") if isinstance(entry, dict) else None
        try:
            images.append(decode_image(data or ""))
        except GenerationError as exc:
            raise PayloadError(f"imageList[{index}].data: {exc.message}") from exc
    return images


def _number(payload: dict, key: str, default: float, kind: type) -> Any:
    value = payload.get(key)
    if value is None:
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise PayloadError(f"{key} must be a number, got {value!r}") from None
    if kind is int and number != int(number):
        raise PayloadError(f"{key} must be a whole number, got {value!r}")
    return kind(number)


def _name(payload: dict, key: str) -> str:
    value = payload.get(key)
    # The WebUI treats a missing or empty upscaler like "None".
    if value is None or value == "":
        return "None"
    if not isinstance(value, str):
        raise PayloadError(f"{key} must be an upscaler name, got {value!r}")
    return value


def _infotext(info: dict[str, Any]) -> str:
    """The WebUI's postprocessing infotext: `key: value` pairs, values quoted when they need it."""
    return ", ".join(key if key == value else f"{key}: {_quote(value)}" for key, value in info.items())


def _quote(value: Any) -> Any:
    text = str(value)
    if "," not in text and "\n" not in text and ":" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def _plaintext_to_html(text: str) -> str:
    return "<p>" + "<br>\n".join(html.escape(line) for line in text.split("\n")) + "</p>"
