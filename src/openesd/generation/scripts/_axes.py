"""The X/Y/Z plot's axis types: what each does to a cell's payload, how it is labelled, and the WebUI's
axis lists (an axis type in script_args is an index into the txt2img or img2img list of the WebUI
version whose argument layout the payload has, or the label itself)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable

from openesd.errors import ModelError, PayloadError, UnsupportedFeature
from openesd.generation.types import ModelFiles

PERMUTATIONS = "permutations"  # the axis value is an ordering of the listed prompt parts
NONE_NAMES = ("", "None", "none")


@dataclass
class AxisContext:
    """What an axis may look at while it changes one cell: all of its values and the job's model files."""

    values: list[Any]
    models: ModelFiles


Apply = Callable[[dict, Any, AxisContext], None]


@dataclass(frozen=True)
class Axis:
    label: str
    kind: Any  # int, float, str or PERMUTATIONS
    apply: Apply
    legend: str = "label"  # "label" ("Steps: 20"), "value", "basename", "join" or "nothing"
    choices: bool = False  # a dropdown in the WebUI: values come from the list argument unless csv_mode
    cost: float = 0.0  # the WebUI runs costly axes (model loads) outermost
    refused: str | None = None

    def text(self, value: Any) -> str:
        """The cell's legend text, as the axis' format_value writes it."""
        if self.legend == "nothing":
            return ""
        if isinstance(value, float):
            value = round(value, 8)
        if self.legend == "value":
            return str(value)
        if self.legend == "basename":
            return os.path.basename(str(value))
        if self.legend == "join":
            return ", ".join(value)
        return f"{self.label}: {value}"


# ---- what an axis does to a cell's payload -------------------------------------------------------------


def _field(key: str) -> Apply:
    def apply(payload: dict, value: Any, ctx: AxisContext) -> None:
        payload[key] = value

    return apply


def _override(key: str, boolean: bool = False) -> Apply:
    def apply(payload: dict, value: Any, ctx: AxisContext) -> None:
        setting = str(value).lower() == "true" if boolean else value  # the WebUI's "True"/"False" choices
        payload["override_settings"] = {**(payload.get("override_settings") or {}), key: setting}

    return apply


def _script_args(payload: dict, name: str) -> list | None:
    """The args of an always-on script (by case-insensitive name), copied so the cell owns them."""
    scripts = payload.get("alwayson_scripts")
    if not isinstance(scripts, dict):
        return None
    for key, entry in scripts.items():
        if str(key).strip().lower() == name and isinstance(entry, dict) and isinstance(entry.get("args"), list):
            args = list(entry["args"])
            payload["alwayson_scripts"] = {**scripts, key: {**entry, "args": args}}
            return args
    return None


def _seed_field(key: str) -> Apply:
    # The `seed` always-on script overrides the payload's seed fields, so an enabled one gets the value too.
    position = {"seed": 0, "subseed": 2, "subseed_strength": 3}[key]

    def apply(payload: dict, value: Any, ctx: AxisContext) -> None:
        payload[key] = value
        args = _script_args(payload, "seed")
        if args and len(args) > position and (position == 0 or (len(args) > 1 and args[1])):
            args[position] = value

    return apply


def set_seed(payload: dict, key: str, value: int) -> None:
    _seed_field(key)(payload, value, AxisContext([], {}))


def _refiner_field(key: str) -> Apply:
    position = {"refiner_checkpoint": 1, "refiner_switch_at": 2}[key]

    def apply(payload: dict, value: Any, ctx: AxisContext) -> None:
        off = key == "refiner_checkpoint" and value in NONE_NAMES
        payload[key] = None if off else value
        args = _script_args(payload, "refiner")
        if args and args[0]:  # the enabled refiner script would put its own values back
            if off:
                args[0] = False
            elif len(args) > position:
                args[position] = value

    return apply


def _prompt_sr(payload: dict, value: Any, ctx: AxisContext) -> None:
    search = ctx.values[0]
    prompt, negative = payload.get("prompt") or "", payload.get("negative_prompt") or ""
    if search not in prompt and search not in negative:
        raise PayloadError(f"X/Y/Z plot: Prompt S/R did not find {search!r} in the prompt or the negative prompt")
    payload["prompt"], payload["negative_prompt"] = prompt.replace(search, value), negative.replace(search, value)


def _prompt_order(payload: dict, value: Any, ctx: AxisContext) -> None:
    # The listed parts, found in the prompt in the order they appear there, are put back in `value`'s order.
    prompt = payload.get("prompt") or ""
    found = sorted(value, key=prompt.find)
    pieces, rest = [], prompt
    for token in found:
        n = rest.find(token)
        pieces.append(rest[:n])
        rest = rest[n + len(token) :]
    payload["prompt"] = "".join(piece + value[i] for i, piece in enumerate(pieces)) + rest


def _checkpoint(payload: dict, value: Any, ctx: AxisContext) -> None:
    from openesd.generation.job import select_checkpoint

    select_checkpoint(ctx.models, value)  # an unknown name fails listing the job's checkpoints
    _override("sd_model_checkpoint")(payload, value, ctx)


def _refiner_checkpoint(payload: dict, value: Any, ctx: AxisContext) -> None:
    from openesd.generation.job import select_checkpoint

    if value not in NONE_NAMES:
        select_checkpoint(ctx.models, value)
    _refiner_field("refiner_checkpoint")(payload, value, ctx)


def _vae(payload: dict, value: Any, ctx: AxisContext) -> None:
    # The WebUI's find_vae: auto/automatic, none, else the shortest VAE name containing the value.
    name = str(value).strip()
    if name.lower() in ("auto", "automatic"):
        chosen = "Automatic"
    elif name.lower() == "none":
        chosen = "None"
    else:
        files = sorted((os.path.basename(str(p)) for p in ctx.models.get("VAE", [])), key=len)
        matches = [f for f in files if name.lower() in f.lower()]
        if not matches:
            # The WebUI falls back to Automatic here; a typo would then go unnoticed in the grid.
            raise ModelError(
                f"X/Y/Z plot: VAE {value!r} matches none of this job's VAE files: {', '.join(files) or 'none'}"
            )
        chosen = matches[0]
    _override("sd_vae")(payload, chosen, ctx)


def _uni_pc_order(payload: dict, value: Any, ctx: AxisContext) -> None:
    _override("uni_pc_order")(payload, min(value, int(payload.get("steps") or 20) - 1), ctx)


def _size(payload: dict, value: Any, ctx: AxisContext) -> None:
    width, _, height = str(value).partition("x")
    try:
        payload["width"], payload["height"] = int(width.strip()), int(height.strip())
    except ValueError:
        raise PayloadError(f"X/Y/Z plot: Size {value!r} is not WIDTHxHEIGHT (e.g. 512x768)") from None


def _nothing(payload: dict, value: Any, ctx: AxisContext) -> None:
    return None


def _refused(payload: dict, value: Any, ctx: AxisContext) -> None:
    raise AssertionError("a refused axis is never applied")


def _refuse(label: str, kind: Any, why: str, choices: bool = False) -> Axis:
    return Axis(label, kind, _refused, choices=choices, refused=why)


_AXES = [
    Axis("Nothing", str, _nothing, legend="nothing"),
    Axis("Seed", int, _seed_field("seed")),
    Axis("Var. seed", int, _seed_field("subseed")),
    Axis("Var. strength", float, _seed_field("subseed_strength")),
    Axis("Steps", int, _field("steps")),
    Axis("Hires steps", int, _field("hr_second_pass_steps")),
    Axis("CFG Scale", float, _field("cfg_scale")),
    _refuse("Image CFG Scale", float, "it only acts on instruct-pix2pix checkpoints, which this worker cannot run"),
    Axis("Prompt S/R", str, _prompt_sr, legend="value"),
    Axis("Prompt order", PERMUTATIONS, _prompt_order, legend="join"),
    Axis("Sampler", str, _field("sampler_name"), legend="value", choices=True),
    Axis("Hires sampler", str, _field("hr_sampler_name"), choices=True),
    Axis("Checkpoint name", str, _checkpoint, legend="basename", choices=True, cost=1.0),
    Axis("Negative Guidance minimum sigma", float, _field("s_min_uncond")),
    Axis("Sigma Churn", float, _field("s_churn")),
    Axis("Sigma min", float, _field("s_tmin")),
    Axis("Sigma max", float, _field("s_tmax")),
    Axis("Sigma noise", float, _field("s_noise")),
    Axis("Schedule type", str, _field("scheduler"), choices=True),
    Axis("Schedule min sigma", float, _override("sigma_min")),
    Axis("Schedule max sigma", float, _override("sigma_max")),
    Axis("Schedule rho", float, _override("rho")),
    Axis("Skip Early CFG", float, _override("skip_early_cond")),
    Axis("Beta schedule alpha", float, _override("beta_dist_alpha")),
    Axis("Beta schedule beta", float, _override("beta_dist_beta")),
    Axis("Eta", float, _field("eta")),
    Axis("Clip skip", int, _override("CLIP_stop_at_last_layers")),
    Axis("Denoising", float, _field("denoising_strength")),
    Axis("Initial noise multiplier", float, _override("initial_noise_multiplier")),
    Axis("Extra noise", float, _override("img2img_extra_noise")),
    Axis("Hires upscaler", str, _field("hr_upscaler"), choices=True),
    Axis("Cond. Image Mask Weight", float, _override("inpainting_mask_weight")),
    Axis("VAE", str, _vae, choices=True, cost=0.7),
    _refuse("Styles", str, "this worker has no saved prompt styles", choices=True),
    Axis("UniPC Order", int, _uni_pc_order, cost=0.5),
    _refuse("Face restore", str, "this worker has no face restoration models"),
    Axis("Token merging ratio", float, _override("token_merging_ratio")),
    Axis("Token merging ratio high-res", float, _override("token_merging_ratio_hr")),
    Axis("Always discard next-to-last sigma", str, _override("always_discard_next_to_last_sigma", True), choices=True),
    Axis("SGM noise multiplier", str, _override("sgm_noise_multiplier", True), choices=True),
    Axis("Refiner checkpoint", str, _refiner_checkpoint, legend="basename", choices=True, cost=1.0),
    Axis("Refiner switch at", float, _refiner_field("refiner_switch_at")),
    Axis("RNG source", str, _override("randn_source"), choices=True),
    Axis("FP8 mode", str, _override("fp8_storage"), choices=True, cost=0.9),
    Axis("Size", str, _size),
]
BY_LABEL = {axis.label.lower(): axis for axis in _AXES}
ALIASES = {"scheduler": "schedule type"}

# The WebUI's axis_options order; an entry with a task appears only in that task's list.
_T, _I = "txt2img", "img2img"
_V110: list[tuple[str, str | None]] = [
    ("Nothing", None), ("Seed", None), ("Var. seed", None), ("Var. strength", None), ("Steps", None),
    ("Hires steps", _T), ("CFG Scale", None), ("Image CFG Scale", _I), ("Prompt S/R", None),
    ("Prompt order", None), ("Sampler", _T), ("Hires sampler", _T), ("Sampler", _I), ("Checkpoint name", None),
    ("Negative Guidance minimum sigma", None), ("Sigma Churn", None), ("Sigma min", None), ("Sigma max", None),
    ("Sigma noise", None), ("Schedule type", None), ("Schedule min sigma", None), ("Schedule max sigma", None),
    ("Schedule rho", None), ("Skip Early CFG", None), ("Beta schedule alpha", None), ("Beta schedule beta", None),
    ("Eta", None), ("Clip skip", None), ("Denoising", None), ("Initial noise multiplier", None),
    ("Extra noise", None), ("Hires upscaler", _T), ("Cond. Image Mask Weight", _I), ("VAE", None),
    ("Styles", None), ("UniPC Order", None), ("Face restore", None), ("Token merging ratio", None),
    ("Token merging ratio high-res", None), ("Always discard next-to-last sigma", None),
    ("SGM noise multiplier", None), ("Refiner checkpoint", None), ("Refiner switch at", None),
    ("RNG source", None), ("FP8 mode", None), ("Size", None),
]  # fmt: skip
# WebUI 1.7 (ESD's cloud image; 15 script args): no Skip Early CFG, Beta, FP8 mode or Size axes.
_V17 = [
    e for e in _V110 if e[0] not in ("Skip Early CFG", "Beta schedule alpha", "Beta schedule beta", "FP8 mode", "Size")
]


@dataclass(frozen=True)
class AxisList:
    """One WebUI version's axis list for one task."""

    version: str
    labels: list[str] = field(default_factory=list)

    def find(self, wanted: Any, which: str) -> Axis:
        """The axis an index or a label names; anything else fails listing the valid ones."""
        if isinstance(wanted, bool) or not isinstance(wanted, (int, str)):
            raise PayloadError(f"X/Y/Z plot: {which} type must be an index or an axis name, got {wanted!r}")
        if isinstance(wanted, int):
            if not 0 <= wanted < len(self.labels):
                raise PayloadError(
                    f"X/Y/Z plot: {which} type {wanted} is not an index of the WebUI {self.version} axis list "
                    f"(0..{len(self.labels) - 1}: {', '.join(f'{i} {n}' for i, n in enumerate(self.labels))})"
                )
            return BY_LABEL[self.labels[wanted].lower()]
        label = ALIASES.get(wanted.strip().lower(), wanted.strip().lower())
        if label not in (n.lower() for n in self.labels):
            raise PayloadError(
                f"X/Y/Z plot: {which} type {wanted!r} is not an axis here; valid: {', '.join(self.labels)}"
            )
        return BY_LABEL[label]


def axis_list(task: str, version: str) -> AxisList:
    entries = _V110 if version == "1.10" else _V17
    return AxisList(version, [label for label, only in entries if only in (None, task)])


def check_refused(axis: Axis, which: str) -> None:
    if axis.refused:
        raise UnsupportedFeature(f"X/Y/Z plot: {which} axis {axis.label!r} is not supported: {axis.refused}")
