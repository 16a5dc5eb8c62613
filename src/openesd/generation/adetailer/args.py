"""`alwayson_scripts.ADetailer.args` as the extension reads them: `[ad_enable, skip_img2img, {tab}, ...]`
with the `ad_*` keys, the extension's defaults and bounds, its older key names, and its infotext entries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from openesd.errors import PayloadError, UnsupportedFeature
from openesd.generation.payload.reader import Reader

VERSION = "24.11.1"  # the extension release whose arguments and infotext these are
MERGE_INVERT = ("None", "Merge", "Merge and Invert")
SORT_BY = ("None", "Position (left to right)", "Position (center to edge)", "Area (large to small)")
FILTER_METHODS = ("Area", "Confidence")
SAME_SAMPLER, SAME_SCHEDULER = "Use same sampler", "Use same scheduler"
_SAME_MODEL = (None, "", "None", "Use same checkpoint", "Use same VAE")

# key, infotext name, default, (low, high): the extension's ADetailerArgs, in its ALL_ARGS order.
FIELDS: tuple[tuple[str, str, Any, tuple[Any, Any]], ...] = (
    ("ad_model", "ADetailer model", "None", (None, None)),
    ("ad_model_classes", "ADetailer model classes", "", (None, None)),
    ("ad_tab_enable", "ADetailer tab enable", True, (None, None)),
    ("ad_prompt", "ADetailer prompt", "", (None, None)),
    ("ad_negative_prompt", "ADetailer negative prompt", "", (None, None)),
    ("ad_confidence", "ADetailer confidence", 0.3, (0.0, 1.0)),
    ("ad_mask_filter_method", "ADetailer method to decide top k masks", "Area", (None, None)),
    ("ad_mask_k", "ADetailer mask only top k", 0, (0, None)),
    ("ad_mask_min_ratio", "ADetailer mask min ratio", 0.0, (0.0, 1.0)),
    ("ad_mask_max_ratio", "ADetailer mask max ratio", 1.0, (0.0, 1.0)),
    ("ad_x_offset", "ADetailer x offset", 0, (None, None)),
    ("ad_y_offset", "ADetailer y offset", 0, (None, None)),
    ("ad_dilate_erode", "ADetailer dilate erode", 4, (None, None)),
    ("ad_mask_merge_invert", "ADetailer mask merge invert", "None", (None, None)),
    ("ad_mask_blur", "ADetailer mask blur", 4, (0, 64)),
    ("ad_denoising_strength", "ADetailer denoising strength", 0.4, (0.0, 1.0)),
    ("ad_inpaint_only_masked", "ADetailer inpaint only masked", True, (None, None)),
    ("ad_inpaint_only_masked_padding", "ADetailer inpaint padding", 32, (0, 256)),
    ("ad_use_inpaint_width_height", "ADetailer use inpaint width height", False, (None, None)),
    ("ad_inpaint_width", "ADetailer inpaint width", 512, (64, 8192)),
    ("ad_inpaint_height", "ADetailer inpaint height", 512, (64, 8192)),
    ("ad_use_steps", "ADetailer use separate steps", False, (None, None)),
    ("ad_steps", "ADetailer steps", 28, (1, 150)),
    ("ad_use_cfg_scale", "ADetailer use separate CFG scale", False, (None, None)),
    ("ad_cfg_scale", "ADetailer CFG scale", 7.0, (0.0, 30.0)),
    ("ad_use_checkpoint", "ADetailer use separate checkpoint", False, (None, None)),
    ("ad_checkpoint", "ADetailer checkpoint", None, (None, None)),
    ("ad_use_vae", "ADetailer use separate VAE", False, (None, None)),
    ("ad_vae", "ADetailer VAE", None, (None, None)),
    ("ad_use_sampler", "ADetailer use separate sampler", False, (None, None)),
    ("ad_sampler", "ADetailer sampler", "DPM++ 2M Karras", (None, None)),
    ("ad_scheduler", "ADetailer scheduler", SAME_SCHEDULER, (None, None)),
    ("ad_use_noise_multiplier", "ADetailer use separate noise multiplier", False, (None, None)),
    ("ad_noise_multiplier", "ADetailer noise multiplier", 1.0, (0.5, 1.5)),
    ("ad_use_clip_skip", "ADetailer use separate CLIP skip", False, (None, None)),
    ("ad_clip_skip", "ADetailer CLIP skip", 1, (1, 12)),
    ("ad_restore_face", "ADetailer restore face", False, (None, None)),
    ("ad_controlnet_model", "ADetailer ControlNet model", "None", (None, None)),
    ("ad_controlnet_module", "ADetailer ControlNet module", "None", (None, None)),
    ("ad_controlnet_weight", "ADetailer ControlNet weight", 1.0, (0.0, 1.0)),
    ("ad_controlnet_guidance_start", "ADetailer ControlNet guidance start", 0.0, (0.0, 1.0)),
    ("ad_controlnet_guidance_end", "ADetailer ControlNet guidance end", 1.0, (0.0, 1.0)),
)
KEYS = tuple(f[0] for f in FIELDS)
# Names older releases took; the API still receives them from saved payloads.
RENAMED = {
    "ad_tap_enable": "ad_tab_enable",  # before 24.x
    "ad_mask_k_largest": "ad_mask_k",  # before 24.x
    "ad_inpaint_full_res": "ad_inpaint_only_masked",  # before 23.6.0
    "ad_inpaint_full_res_padding": "ad_inpaint_only_masked_padding",  # before 23.6.0
}
IGNORED = ("is_api",)  # the extension's own marker of an API call; it changes nothing


@dataclass(frozen=True)
class DetailerTab:
    """One detector tab: `values` holds every `ad_*` key of FIELDS, the extension's default where not given."""

    values: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    @property
    def skipped(self) -> bool:
        return self["ad_model"] == "None" or not self["ad_tab_enable"]


@dataclass
class DetailerOptions:
    """What `alwayson_scripts.ADetailer` asks of the job."""

    tabs: list[DetailerTab] = field(default_factory=list)
    skip_img2img: bool = False
    sort_by: str = "None"  # the extension's setting `ad_bbox_sortby`
    same_seed: bool = False  # its setting `ad_same_seed_for_each_tab`

    @property
    def active(self) -> list[tuple[int, DetailerTab]]:
        """(tab index, tab) of the tabs that run, as the extension numbers them in the infotext."""
        return [(n, tab) for n, tab in enumerate(self.tabs) if not tab.skipped]


def read_adetailer(args: list[Any], override_settings: dict[str, Any] | None = None) -> DetailerOptions | None:
    """The extension's `is_ad_enabled` + `get_args`: None when disabled or no tab names a model. The
    extension's own settings `ad_bbox_sortby` and `ad_same_seed_for_each_tab` come from override_settings."""
    if not args:
        return None
    leading = 0
    while leading < min(len(args), 2) and isinstance(args[leading], bool):
        leading += 1
    for position, arg in enumerate(args[leading:], leading):
        if not isinstance(arg, dict):
            raise PayloadError(
                f"alwayson_scripts['ADetailer'].args[{position}] must be an object of ad_* keys, got {arg!r} "
                "(the positional form of releases before 23.5.12 is not supported)"
            )
    enabled = args[0] if isinstance(args[0], bool) else True
    tabs = [_read_tab(arg, n) for n, arg in enumerate(args[leading:])]
    if not enabled or not tabs or all(tab["ad_model"] == "None" for tab in tabs):
        return None
    settings = Reader(override_settings or {})
    sort_by = settings.str("ad_bbox_sortby", "None")
    if sort_by not in SORT_BY:
        raise PayloadError(f"override_settings.ad_bbox_sortby {sort_by!r} is not one of {', '.join(SORT_BY)}")
    return DetailerOptions(
        tabs=tabs,
        skip_img2img=leading == 2 and bool(args[1]),
        sort_by=sort_by,
        same_seed=settings.bool("ad_same_seed_for_each_tab"),
    )


def _read_tab(raw: dict[str, Any], n: int) -> DetailerTab:
    where = f"ADetailer {ordinal(n + 1)} tab"
    data = _normalise(raw, where)
    r = Reader(data)
    values: dict[str, Any] = {}
    for key, _, default, (low, high) in FIELDS:
        values[key] = _typed(r, key, default, low, high, where)
    _check_choices(values, where)
    for key in ("ad_inpaint_width", "ad_inpaint_height"):
        if values["ad_use_inpaint_width_height"] and values[key] % 8:
            raise PayloadError(f"{where}: {key} must be a multiple of 8, got {values[key]}")
    _refuse_unsupported(values, where)
    return DetailerTab(values)


def _normalise(raw: dict[str, Any], where: str) -> dict[str, Any]:
    data = {}
    for key, value in raw.items():
        if key in IGNORED:
            continue
        if key == "ad_conf":  # before 23.6.0: a percentage 0..100
            data["ad_confidence"] = Reader(raw).float("ad_conf", 30, 0, 100) / 100
            continue
        name = RENAMED.get(key, key)
        if name not in KEYS:
            raise PayloadError(f"{where}: unknown key {key!r}; valid keys: {', '.join(KEYS)}")
        data[name] = value
    if "ad_controlnet_guidance_start_end" in raw:
        raise PayloadError(f"{where}: unknown key 'ad_controlnet_guidance_start_end'; valid keys: {', '.join(KEYS)}")
    return data


def _typed(r: Reader, key: str, default: Any, low: Any, high: Any, where: str) -> Any:
    try:
        if isinstance(default, bool):
            return r.bool(key, default)
        if isinstance(default, int):
            return r.int(key, default, low, high)
        if isinstance(default, float):
            return r.float(key, default, low, high)
        if default is None:  # ad_checkpoint / ad_vae: a name or null
            return None if r.raw(key) is None else r.str(key)
        return r.str(key, default)
    except PayloadError as exc:
        raise PayloadError(f"{where}: {exc.message}") from None


def _check_choices(values: dict[str, Any], where: str) -> None:
    for key, choices in (("ad_mask_merge_invert", MERGE_INVERT), ("ad_mask_filter_method", FILTER_METHODS)):
        if values[key] not in choices:
            raise PayloadError(f"{where}: {key} {values[key]!r} is not one of {', '.join(choices)}")


def _refuse_unsupported(v: dict[str, Any], where: str) -> None:
    """What changes the picture but this worker cannot do: refused by name, never dropped."""
    model = v["ad_model"]
    if model.lower().startswith("mediapipe") or model.lower().endswith((".tflite", ".task")):
        raise UnsupportedFeature(
            f"{where}: ad_model {model!r} is a mediapipe detector, which this worker does not run; "
            "upload a YOLOv8 detector exported to ONNX as an ADetailer model"
        )
    if "-world" in model.lower() and v["ad_model_classes"]:
        raise UnsupportedFeature(f"{where}: ad_model_classes (YOLO-World open-vocabulary classes) is not supported")
    if v["ad_restore_face"]:
        raise UnsupportedFeature(f"{where}: ad_restore_face is not supported: this worker has no face restoration")
    if v["ad_controlnet_model"] not in ("None", ""):
        raise UnsupportedFeature(
            f"{where}: ad_controlnet_model {v['ad_controlnet_model']!r} is not supported: "
            "ADetailer's inpaint passes run without ControlNet here (use 'None')"
        )
    if v["ad_use_checkpoint"] and v["ad_checkpoint"] not in _SAME_MODEL:
        raise UnsupportedFeature(
            f"{where}: ad_checkpoint {v['ad_checkpoint']!r} is not supported: the passes use the job's checkpoint"
        )
    if v["ad_use_vae"] and v["ad_vae"] not in _SAME_MODEL:
        raise UnsupportedFeature(f"{where}: ad_vae {v['ad_vae']!r} is not supported: the passes use the job's VAE")
    if v["ad_use_noise_multiplier"] and v["ad_noise_multiplier"] != 1.0:
        raise UnsupportedFeature(
            f"{where}: ad_noise_multiplier {v['ad_noise_multiplier']} is not supported: "
            "this worker's img2img has no initial noise multiplier (use 1.0)"
        )


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, ..., 11th: the extension's tab names."""
    tail = "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{tail}"


def infotext_params(options: DetailerOptions) -> dict[str, Any]:
    """The extension's `extra_params`: each running tab's entries that differ from "off", then the version."""
    params: dict[str, Any] = {}
    for n, tab in options.active:
        suffix = "" if n == 0 else f" {ordinal(n + 1)}"
        params.update({f"{name}{suffix}": value for name, value in _tab_params(tab).items()})
    params["ADetailer version"] = VERSION
    return params


# (switch, entries dropped with it, value meaning "off"): the extension's `ppop` calls, in order.
_DROPS: tuple[tuple[str, tuple[str, ...], Any], ...] = (
    ("ADetailer model classes", (), None),
    ("ADetailer prompt", (), None),
    ("ADetailer negative prompt", (), None),
    ("ADetailer mask only top k", ("ADetailer method to decide top k masks",), 0),
    ("ADetailer mask min ratio", (), 0.0),
    ("ADetailer mask max ratio", (), 1.0),
    ("ADetailer x offset", (), 0),
    ("ADetailer y offset", (), 0),
    ("ADetailer mask merge invert", (), "None"),
    ("ADetailer inpaint only masked", ("ADetailer inpaint padding",), "keep"),
    ("ADetailer use inpaint width height", ("ADetailer inpaint width", "ADetailer inpaint height"), None),
    ("ADetailer use separate steps", ("ADetailer steps",), None),
    ("ADetailer use separate CFG scale", ("ADetailer CFG scale",), None),
    ("ADetailer use separate checkpoint", ("ADetailer checkpoint",), None),
    ("ADetailer use separate VAE", ("ADetailer VAE",), None),
    ("ADetailer use separate sampler", ("ADetailer sampler", "ADetailer scheduler"), None),
    ("ADetailer sampler", (), SAME_SAMPLER),
    ("ADetailer scheduler", (), SAME_SCHEDULER),
    ("ADetailer use separate noise multiplier", ("ADetailer noise multiplier",), None),
    ("ADetailer use separate CLIP skip", ("ADetailer CLIP skip",), None),
    ("ADetailer restore face", (), None),
    (
        "ADetailer ControlNet model",
        (
            "ADetailer ControlNet module",
            "ADetailer ControlNet weight",
            "ADetailer ControlNet guidance start",
            "ADetailer ControlNet guidance end",
        ),
        "None",
    ),
    ("ADetailer ControlNet module", (), "None"),
    ("ADetailer ControlNet weight", (), 1.0),
    ("ADetailer ControlNet guidance start", (), 0.0),
    ("ADetailer ControlNet guidance end", (), 1.0),
)


def _tab_params(tab: DetailerTab) -> dict[str, Any]:
    p = {name: tab[key] for key, name, _, _ in FIELDS}
    p.pop("ADetailer tab enable")
    for switch, others, off in _DROPS:
        if switch not in p:
            continue
        value = p[switch]
        if off == "keep":  # "inpaint only masked" False keeps itself and drops only the padding
            if not value:
                p.pop(others[0], None)
            continue
        if (not value) if off is None else value == off:
            for name in (switch, *others):
                p.pop(name, None)
    return p
