"""The "Tiled Diffusion" always-on script's arguments (pkuliyi2015/multidiffusion-upscaler-for-automatic1111),
read in the positional order its `process()` takes them, or as one object keyed by those parameter names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from openesd.errors import PayloadError, UnsupportedFeature
from openesd.generation.payload.reader import Reader

METHODS = ("MultiDiffusion", "Mixture of Diffusers")

# The extension's `process()` parameters in order; region control follows as 10 values per region.
ARG_NAMES = (
    "enabled",
    "method",
    "overwrite_size",
    "keep_input_size",
    "image_width",
    "image_height",
    "tile_width",
    "tile_height",
    "overlap",
    "tile_batch_size",
    "upscaler_name",
    "scale_factor",
    "noise_inverse",
    "noise_inverse_steps",
    "noise_inverse_retouch",
    "noise_inverse_renoise_strength",
    "noise_inverse_renoise_kernel",
    "control_tensor_cpu",
    "enable_bbox_control",
    "draw_background",
    "causal_layers",
)
# The releases of spring 2023 put noise inversion right after the method; told apart by the fourth
# value: a step count there (inversion steps), a checkbox in the current order (keep_input_size, which
# a client may send as 0 or 1).
NOISE_INVERSION_FIRST = ARG_NAMES[:2] + ARG_NAMES[12:17] + ARG_NAMES[2:12] + ARG_NAMES[17:]
# Names the object form also takes: older releases' parameter names and those client libraries send.
ALIASES = {"overwrite_image_size": "overwrite_size", "batch_size": "tile_batch_size", "upscaler": "upscaler_name"}
REGION_KEYS = ("bbox_control_states",)  # region control's values: they act only with enable_bbox_control
# The extension's UI defaults, which its API fills in for arguments a payload leaves out.
DEFAULTS: dict[str, Any] = {
    "method": "MultiDiffusion",
    "overwrite_size": False,
    "keep_input_size": True,
    "image_width": 1024,
    "image_height": 1024,
    "tile_width": 96,
    "tile_height": 96,
    "overlap": 48,
    "tile_batch_size": 4,
    "upscaler_name": "None",
    "scale_factor": 2.0,
    "noise_inverse": False,
}


@dataclass(frozen=True)
class TiledDiffusionSettings:
    """An enabled Tiled Diffusion: tile sizes and overlap in latent pixels, as the extension takes them."""

    method: str
    overwrite_size: bool
    keep_input_size: bool
    image_width: int
    image_height: int
    tile_width: int
    tile_height: int
    overlap: int
    tile_batch_size: int
    upscaler_name: str
    scale_factor: float


def read_tiled_diffusion(args: list[Any], is_img2img: bool) -> TiledDiffusionSettings | None:
    """The settings of an enabled script, None when disabled; extras it cannot honour are refused by name."""
    values = _named(args)
    r = Reader({**DEFAULTS, **{k: v for k, v in values.items() if v is not None}})
    if not r.bool("enabled"):
        return None
    method = r.str("method")
    if method not in METHODS:
        raise PayloadError(f"Tiled Diffusion method {method!r} is not supported; valid methods: {', '.join(METHODS)}")
    _refuse_extras(r, is_img2img)
    # The extension overwrites the size only in txt2img; elsewhere the two sliders are ignored.
    overwrite = r.bool("overwrite_size") and not is_img2img
    return TiledDiffusionSettings(
        method=method,
        overwrite_size=overwrite,
        keep_input_size=r.bool("keep_input_size"),
        image_width=_image_side(r, "image_width") if overwrite else 0,
        image_height=_image_side(r, "image_height") if overwrite else 0,
        tile_width=r.int("tile_width", 96, 1, 1024),
        tile_height=r.int("tile_height", 96, 1, 1024),
        overlap=r.int("overlap", 48, 0, 1024),
        tile_batch_size=r.int("tile_batch_size", 4, 1, 64),
        upscaler_name=r.str("upscaler_name") or "None",
        scale_factor=r.float("scale_factor", 2.0, 1.0, 8.0),
    )


def _named(args: list[Any]) -> dict[str, Any]:
    """Positional args (ESD's and the WebUI API's form) or a single object of parameter names."""
    if len(args) == 1 and isinstance(args[0], dict):
        values = {ALIASES.get(str(k), str(k)): v for k, v in args[0].items()}
        unknown = sorted(set(values) - set(ARG_NAMES) - set(REGION_KEYS))
        if unknown:
            raise PayloadError(
                f"alwayson_scripts['Tiled Diffusion'] has unknown arguments {unknown}; valid: {', '.join(ARG_NAMES)}"
            )
        return values
    # Region control's 10 values per region follow; they only act with enable_bbox_control (refused).
    order = ARG_NAMES
    fourth = args[3] if len(args) > 3 else None
    if isinstance(fourth, (int, float)) and not isinstance(fourth, bool) and fourth not in (0, 1):
        order = NOISE_INVERSION_FIRST
    return dict(zip(order, args))


def _refuse_extras(r: Reader, is_img2img: bool) -> None:
    # Noise inversion only acts on img2img (the extension ignores it in txt2img).
    if is_img2img and r.bool("noise_inverse"):
        raise UnsupportedFeature(
            "Tiled Diffusion noise inversion (noise_inverse) is not supported; disable it "
            "(supported: MultiDiffusion and Mixture of Diffusers tiling, upscaling, overwrite/keep size)"
        )
    if r.bool("enable_bbox_control"):
        raise UnsupportedFeature(
            "Tiled Diffusion region prompt control (enable_bbox_control) is not supported; disable it "
            "(supported: MultiDiffusion and Mixture of Diffusers tiling, upscaling, overwrite/keep size)"
        )


def _image_side(r: Reader, key: str) -> int:
    value = r.int(key, 1024, 64, 8192)
    if value % 8:
        raise PayloadError(f"Tiled Diffusion {key} must be a multiple of 8, got {value}")
    return value
