"""Parse WebUI payloads (JSON with `Infinity`) and read them into typed, validated generation settings."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field

from openesd.errors import PayloadError
from openesd.generation.payload.options import read_override_settings, sampler_fields
from openesd.generation.payload.reader import Reader
from openesd.generation.payload.script_names import script_key

__all__ = ["GenerationSettings", "Reader", "SamplerOptions", "parse_payload", "read_settings"]

MAX_SIDE = 8192  # the WebUI API's bound on width/height
DISTILLED_CFG_DEFAULT = 3.5  # Forge's API default for distilled_cfg_scale (FLUX.1-dev's guidance)


def _constant(name: str) -> float:
    # Real WebUI payloads carry `"s_tmax": Infinity`; ESD maps it to the largest float. NaN never
    # means anything useful in a generation setting, so it is refused.
    if name == "Infinity":
        return sys.float_info.max
    if name == "-Infinity":
        return -sys.float_info.max
    raise PayloadError(f"payload holds {name}, which is not a number; use a finite value")


def parse_payload(text: str | bytes) -> dict:
    """The payload object: `Infinity` -> float max, `NaN` refused, anything but a JSON object refused."""
    try:
        data = json.loads(text, parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise PayloadError(f"payload is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise PayloadError(f"payload must be a JSON object, got {type(data).__name__}")
    return data


@dataclass
class HiresSettings:
    """The hires-fix second pass (`enable_hr`)."""

    scale: float
    resize_x: int
    resize_y: int
    upscaler: str
    steps: int
    denoising_strength: float
    sampler_name: str | None
    scheduler: str | None
    prompt: str
    negative_prompt: str


@dataclass
class InpaintSettings:
    mask: str
    blur_x: int
    blur_y: int
    fill: int  # 0 fill, 1 original, 2 latent noise, 3 latent nothing
    full_res: bool
    full_res_padding: int
    invert: bool


@dataclass(frozen=True)
class SamplerOptions:
    """The WebUI's sampling options, from the payload and `override_settings` (WebUI option names).

    Zero for `sigma_min`, `sigma_max` and `rho` means the model's / scheduler's own value, as in the
    WebUI; `eta` None means the WebUI's default for the sampler (`eta_ancestral` for ancestral and SDE
    samplers, `eta_ddim` for DDIM). `s_churn`, `s_tmin`, `s_tmax` (infinity for the WebUI's 0) and
    `s_noise` are the values the sampler function gets if it takes them, combined as the WebUI does
    (payload/options.py `sampler_fields`). read_settings fills every field from the WebUI's defaults
    (options.HONOURED), whatever the defaults below say.
    """

    s_churn: float = 0.0
    s_tmin: float = 0.0
    s_tmax: float = float("inf")
    s_noise: float = 1.0
    eta: float | None = None
    eta_ancestral: float = 1.0
    eta_ddim: float = 0.0
    eta_noise_seed_delta: int = 0
    randn_source: str = "GPU"  # GPU (the WebUI's default: an NVIDIA card's noise) | CPU | NV
    sigma_min: float = 0.0
    sigma_max: float = 0.0
    rho: float = 0.0
    always_discard_next_to_last_sigma: bool = False
    sgm_noise_multiplier: bool = False
    uni_pc_variant: str = "bh1"
    uni_pc_skip_type: str = "time_uniform"
    uni_pc_order: int = 3
    uni_pc_lower_order_final: bool = True
    use_old_scheduling: bool = False
    emphasis: str = "Original"
    use_old_karras_scheduler_sigmas: bool = False  # Karras sigmas from 0.1 to 10 instead of the model's range
    beta_dist_alpha: float = 0.6  # the "Beta" scheduler's distribution
    beta_dist_beta: float = 0.6
    s_min_uncond: float = 0.0  # CFG denoiser: skip the negative prompt below this sigma (every other step)
    s_min_uncond_all: bool = False  # ... on every step
    skip_early_cond: float = 0.0  # CFG denoiser: no CFG for this fraction of the first steps
    pad_cond_uncond: bool = False  # pad the shorter of prompt / negative prompt with empty-prompt chunks
    pad_cond_uncond_v0: bool = False


@dataclass
class GenerationSettings:
    """A txt2img/img2img payload with the WebUI API's defaults filled in."""

    prompt: str
    negative_prompt: str
    seed: int
    subseed: int
    subseed_strength: float
    seed_resize_from_w: int
    seed_resize_from_h: int
    sampler_name: str
    scheduler: str | None
    batch_size: int
    n_iter: int
    steps: int
    cfg_scale: float
    width: int
    height: int
    tiling: bool
    eta: float | None
    override_settings: dict
    refiner_checkpoint: str | None
    refiner_switch_at: float | None
    alwayson_scripts: dict
    hires: HiresSettings | None = None
    init_images: list[str] = field(default_factory=list)
    resize_mode: int = 0
    denoising_strength: float = 0.75
    inpaint: InpaintSettings | None = None
    include_init_images: bool = False
    sampling: SamplerOptions = field(default_factory=SamplerOptions)
    ignored_settings: list[str] = field(default_factory=list)  # override_settings keys with no effect here
    unknown_settings: list[str] = field(default_factory=list)  # override_settings keys the WebUI 1.10 lacks
    # FLUX.1 / SD 3.5 (Forge's fields): FLUX.1-dev's guidance input, and the flow schedule's shift; None: absent.
    distilled_cfg_scale: float | None = None
    shift: float | None = None

    @property
    def clip_skip(self) -> int:
        value = self.override_settings.get("CLIP_stop_at_last_layers", 1)
        return Reader({"CLIP_stop_at_last_layers": value}).int("CLIP_stop_at_last_layers", 1, 1, 12)


def read_settings(payload: dict, task: str) -> GenerationSettings:
    """Validate a txt2img/img2img payload (first, before any model loads) into GenerationSettings."""
    r = Reader(payload)
    _check_script_name(r)
    _refuse_unsupported(r)
    options = read_override_settings(r.dict("override_settings"))
    settings = GenerationSettings(
        prompt=r.str("prompt"),
        negative_prompt=r.str("negative_prompt"),
        seed=r.int("seed", -1),
        subseed=r.int("subseed", -1),
        subseed_strength=r.float("subseed_strength", 0.0, 0.0, 1.0),
        seed_resize_from_w=r.int("seed_resize_from_w", -1),
        seed_resize_from_h=r.int("seed_resize_from_h", -1),
        sampler_name=r.str("sampler_name") or r.str("sampler_index") or "Euler a",
        scheduler=r.str("scheduler") or None,
        batch_size=r.int("batch_size", 1, 1, 64),
        n_iter=r.int("n_iter", 1, 1, 100),
        steps=r.int("steps", 20, 1, 150),
        cfg_scale=r.float("cfg_scale", 7.0, 0.0, 30.0),
        width=_side(r, "width"),
        height=_side(r, "height"),
        tiling=r.bool("tiling", options.values["tiling"]),
        eta=r.float("eta", 0.0) if payload.get("eta") is not None else None,
        override_settings=r.dict("override_settings"),
        refiner_checkpoint=r.str("refiner_checkpoint") or None,
        refiner_switch_at=r.float("refiner_switch_at", 0.8, 0.0, 1.0)
        if payload.get("refiner_switch_at") is not None
        else None,
        alwayson_scripts=r.dict("alwayson_scripts"),
        sampling=SamplerOptions(**sampler_fields(options.values, r)),
        ignored_settings=options.ignored,
        unknown_settings=options.unknown,
        distilled_cfg_scale=_optional(r, "distilled_cfg_scale", 0.0, 30.0),
        shift=_optional(r, "shift", 0.01, 100.0),
    )
    if task == "txt2img" and r.bool("enable_hr"):
        settings.hires = _hires(r)
        settings.denoising_strength = settings.hires.denoising_strength
    if task == "img2img":
        _img2img(r, settings)
    return settings


def _optional(r: Reader, key: str, low: float, high: float) -> float | None:
    return r.float(key, 0.0, low, high) if r.raw(key) is not None else None


def _side(r: Reader, key: str) -> int:
    value = r.int(key, 512, 64, MAX_SIDE)
    if value % 8:
        raise PayloadError(f"{key} must be a multiple of 8, got {value}")
    return value


def _refuse_unsupported(r: Reader) -> None:
    """Options the WebUI would honour but this worker cannot: refused by name, never silently dropped."""
    if r.bool("restore_faces"):
        raise PayloadError("restore_faces is not supported: this worker has no face restoration models")
    styles = r.raw("styles", [])
    if styles:
        raise PayloadError(f"styles {styles!r} are not known: this worker has no saved prompt styles")
    hr_checkpoint = r.raw("hr_checkpoint_name")
    if r.bool("enable_hr") and hr_checkpoint not in (None, "", "Use same checkpoint"):
        raise PayloadError(
            f"hr_checkpoint_name {hr_checkpoint!r} is not supported: hires fix uses the job's checkpoint"
        )


def _check_script_name(r: Reader) -> None:
    # The generator runs a selectable script's cells as plain payloads; an unknown name fails here too.
    name = r.raw("script_name")
    if name not in (None, "", "None"):
        script_key(name)


def _hires(r: Reader) -> HiresSettings:
    return HiresSettings(
        scale=r.float("hr_scale", 2.0, 1.0, 8.0),
        resize_x=r.int("hr_resize_x", 0, 0, MAX_SIDE),
        resize_y=r.int("hr_resize_y", 0, 0, MAX_SIDE),
        upscaler=r.str("hr_upscaler") or "Latent",
        steps=r.int("hr_second_pass_steps", 0, 0, 150),
        denoising_strength=r.float("denoising_strength", 0.7, 0.0, 1.0),
        sampler_name=r.str("hr_sampler_name") or None,
        scheduler=r.str("hr_scheduler") or None,
        prompt=r.str("hr_prompt"),
        negative_prompt=r.str("hr_negative_prompt"),
    )


def _img2img(r: Reader, settings: GenerationSettings) -> None:
    images = r.raw("init_images", [])
    if not isinstance(images, list) or not images or not all(isinstance(i, str) for i in images):
        raise PayloadError("init_images must be a non-empty list of base64 images (data URLs or bare base64)")
    settings.init_images = images
    settings.resize_mode = r.int("resize_mode", 0, 0, 3)
    settings.denoising_strength = r.float("denoising_strength", 0.75, 0.0, 1.0)
    settings.include_init_images = r.bool("include_init_images")
    mask = r.raw("mask")
    if mask:
        if not isinstance(mask, str):
            raise PayloadError(f"mask must be a base64 image, got {type(mask).__name__}")
        blur = r.int("mask_blur", 4, 0, 64) if r.raw("mask_blur") is not None else None
        settings.inpaint = InpaintSettings(
            mask=mask,
            blur_x=blur if blur is not None else r.int("mask_blur_x", 4, 0, 64),
            blur_y=blur if blur is not None else r.int("mask_blur_y", 4, 0, 64),
            fill=r.int("inpainting_fill", 1, 0, 3),
            full_res=r.bool("inpaint_full_res"),
            full_res_padding=r.int("inpaint_full_res_padding", 32, 0, 256),
            invert=bool(r.int("inpainting_mask_invert", 0, 0, 1)),
        )
