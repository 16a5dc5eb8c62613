"""`alwayson_scripts` as decisions.md says: known ones are applied or ignored when disabled; an enabled
unsupported or unknown script fails the job naming it and listing what is supported."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from openesd.errors import UnsupportedFeature
from openesd.generation.payload.settings import GenerationSettings, Reader
from openesd.generation.payload.tiled_diffusion import TiledDiffusionSettings, read_tiled_diffusion

KNOWN = ("controlnet", "seed", "refiner", "tiled vae", "tiled diffusion", "extra options", "adetailer")
SUPPORTED = ("controlnet", "seed", "refiner", "tiled vae", "tiled diffusion", "extra options (empty)", "ADetailer")


@dataclass
class ScriptOptions:
    """What the always-on scripts ask of this job."""

    controlnet_units: list[dict] = field(default_factory=list)
    tiled_vae: bool = False
    tiled_diffusion: TiledDiffusionSettings | None = None
    adetailer: Any = None  # adetailer.args.DetailerOptions when ADetailer runs


def _args(name: str, entry: Any) -> list:
    if isinstance(entry, dict):
        entry = entry.get("args", [])
    if entry is None:
        return []
    if not isinstance(entry, list):
        raise UnsupportedFeature(f"alwayson_scripts[{name!r}].args must be a list, got {entry!r}")
    return entry


def apply_scripts(settings: GenerationSettings) -> ScriptOptions:
    """Validate every always-on script, apply `seed` and `refiner` to `settings`, return the rest."""
    options = ScriptOptions()
    for raw_name, entry in settings.alwayson_scripts.items():
        name = str(raw_name).strip().lower()
        if name not in KNOWN:
            raise UnsupportedFeature(
                f"alwayson script {raw_name!r} is not supported; supported: {', '.join(SUPPORTED)}"
            )
        args = _args(raw_name, entry)
        _HANDLERS[name](args, settings, options)
    return options


def _controlnet(args: list, settings: GenerationSettings, options: ScriptOptions) -> None:
    units = [u for u in args if isinstance(u, dict)]
    options.controlnet_units = [u for u in units if u.get("enabled")]


def _seed(args: list, settings: GenerationSettings, options: ScriptOptions) -> None:
    # The WebUI's seed script: [seed, variation enabled, subseed, subseed strength, resize w, resize h].
    if not args:
        return
    r = Reader(dict(zip(("seed", "enabled", "subseed", "subseed_strength", "w", "h"), args)))
    settings.seed = r.int("seed", settings.seed)
    if not r.bool("enabled"):
        return
    strength = r.float("subseed_strength", 0.0, 0.0, 1.0)
    if strength > 0:
        settings.subseed, settings.subseed_strength = r.int("subseed", -1), strength
    w, h = r.int("w", 0), r.int("h", 0)
    if w > 0 and h > 0:
        settings.seed_resize_from_w, settings.seed_resize_from_h = w, h


def _refiner(args: list, settings: GenerationSettings, options: ScriptOptions) -> None:
    # [enabled, checkpoint, switch_at]
    if not args or not args[0]:
        return
    r = Reader(dict(zip(("enabled", "checkpoint", "switch_at"), args)))
    checkpoint = r.str("checkpoint")
    if not checkpoint or checkpoint == "None":
        raise UnsupportedFeature("alwayson script 'refiner' is enabled but names no refiner checkpoint")
    settings.refiner_checkpoint = checkpoint
    settings.refiner_switch_at = r.float("switch_at", 0.8, 0.0, 1.0)


def _tiled_vae(args: list, settings: GenerationSettings, options: ScriptOptions) -> None:
    options.tiled_vae = bool(args and args[0])


def _tiled_diffusion(args: list, settings: GenerationSettings, options: ScriptOptions) -> None:
    tiled = read_tiled_diffusion(args, is_img2img=bool(settings.init_images))
    if tiled is not None and tiled.overwrite_size:  # txt2img: the extension sets the image size
        settings.width, settings.height = tiled.image_width, tiled.image_height
    options.tiled_diffusion = tiled


def _extra_options(args: list, settings: GenerationSettings, options: ScriptOptions) -> None:
    if any(a not in (None, "", [], {}) for a in args):
        raise UnsupportedFeature(
            "alwayson script 'extra options' with values is not supported; put settings in override_settings "
            f"(supported: {', '.join(SUPPORTED)})"
        )


def _adetailer(args: list, settings: GenerationSettings, options: ScriptOptions) -> None:
    from openesd.generation.adetailer.args import read_adetailer

    options.adetailer = read_adetailer(args, settings.override_settings)


_HANDLERS = {
    "controlnet": _controlnet,
    "seed": _seed,
    "refiner": _refiner,
    "tiled vae": _tiled_vae,
    "tiled diffusion": _tiled_diffusion,
    "extra options": _extra_options,
    "adetailer": _adetailer,
}
