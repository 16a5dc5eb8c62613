"""Per job: the text encoders and VAE of a FLUX.1/SD 3 pipeline, from the checkpoint or the job's files.

Forge's way: `override_settings.forge_additional_modules` names the files (paths or file names) among
the job's `text_encoder` and `VAE` files; without it, every `text_encoder` file of the job is a
candidate and the VAE is `sd_vae`'s, else the checkpoint's own, else the job's first VAE file. Each
text encoder file goes to the role its shapes fit (T5-XXL, CLIP-L, CLIP-G); a role left empty fails
the job with a message naming the file type it needs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

from openesd.errors import ModelError
from openesd.generation.models import _flow_detect as fd
from openesd.generation.types import ModelFiles
from openesd.modelfiles.keys import text_encoder_family

TEXT_ENCODER_TYPE = "text_encoder"
_PREFIX = re.compile(r"^text_encoders\.\w+\.transformer\.")
EXAMPLES = {"clip_l": "clip_l.safetensors", "clip_g": "clip_g.safetensors", "t5": "t5xxl_fp16.safetensors"}
VAE_EXAMPLES = {"flux": "ae.safetensors", "sd3": "sd3_vae.safetensors"}
# (path, role) -> text encoder module; (path) -> VAE module: the worker's cache stands behind both.
TextEncoderLoader = Callable[[Path, str], Any]
VaeLoader = Callable[[Path], Any]


def additional_modules(overrides: dict[str, Any]) -> list[str]:
    """`forge_additional_modules` as file names (Forge sends full paths, some clients a single string)."""
    wanted = overrides.get("forge_additional_modules") or []
    if isinstance(wanted, str):
        wanted = [wanted]
    if not isinstance(wanted, list) or not all(isinstance(w, str) for w in wanted):
        raise ModelError("override_settings.forge_additional_modules must be a list of file names")
    return [re.split(r"[\\/]", w.strip())[-1] for w in wanted if w.strip()]


def choose_files(models: ModelFiles, overrides: dict[str, Any]) -> tuple[list[Path], Path | None, bool]:
    """(text encoder files, VAE file or None, whether the VAE was named) this job asks for."""
    encoders = [Path(p) for p in models.get(TEXT_ENCODER_TYPE, [])]
    vaes = [Path(p) for p in models.get("VAE", []) if Path(p).is_file()]
    named = additional_modules(overrides)
    if not named:
        return encoders, None, False
    picked_encoders, picked_vae = [], None
    for name in named:
        match = _by_name(encoders, name) or _by_name(vaes, name)
        if match is None:
            available = ", ".join(p.name for p in encoders + vaes) or "none"
            raise ModelError(
                f"forge_additional_modules names {name!r}, which is not among this job's text_encoder or VAE "
                f"files: {available}"
            )
        if match in encoders:
            picked_encoders.append(match)
        else:
            picked_vae = match
    return picked_encoders, picked_vae, picked_vae is not None


def _by_name(paths: list[Path], name: str) -> Path | None:
    for path in paths:
        if name in (path.name, path.stem):
            return path
    return None


def assign_roles(files: list[Path], family: str, transformer: dict[str, Any]) -> dict[str, Path]:
    """role -> file for the text encoder files, by what their shapes are and the widths the transformer takes."""
    from openesd.generation.models._common import shapes_of_file

    roles: dict[str, Path] = {}
    for path in files:
        shapes = {_PREFIX.sub("", k): v for k, v in shapes_of_file(path).items()}
        kind = text_encoder_family(shapes.keys())
        if kind == "t5":
            role: str | None = "t5"
        elif kind == "clip":
            role = fd.clip_role(fd.clip_config(shapes), family, transformer)
        else:
            raise ModelError(f"text_encoder file {path.name!r} is neither a CLIP nor a T5 text encoder")
        if role is None:
            raise ModelError(f"text_encoder file {path.name!r} is a CLIP whose width does not fit this model")
        roles.setdefault(role, path)
    return roles


def complete_pipeline(
    loaded: Any,
    models: ModelFiles,
    overrides: dict[str, Any],
    load_text_encoder: TextEncoderLoader,
    load_vae: VaeLoader,
) -> Path | None:
    """Put this job's text encoders and VAE into `loaded.pipe`; returns the VAE file used (None: the checkpoint's)."""
    from openesd.generation.job import select_vae

    encoder_files, vae_file, named = choose_files(models, overrides)
    config = dict(loaded.pipe.transformer.config)
    roles = assign_roles(encoder_files, loaded.family, config)
    parts: dict[str, Any] = {}
    for component, role in fd.ENCODERS[loaded.family]:
        if role in roles:
            parts[component] = load_text_encoder(roles[role], role)
        elif loaded.own_parts.get(component) is not None:
            parts[component] = loaded.own_parts[component]
        else:
            raise ModelError(_missing(loaded, f"{fd.ROLE_NAMES[role]} text encoder", TEXT_ENCODER_TYPE, EXAMPLES[role]))
    if not named:
        vae_file = select_vae(models, overrides.get("sd_vae"), loaded.path)
    if vae_file is None and loaded.own_parts.get("vae") is None:
        vae_file = next((Path(p) for p in models.get("VAE", []) if Path(p).is_file()), None)
    if vae_file is not None:
        parts["vae"] = load_vae(vae_file)
    elif loaded.own_parts.get("vae") is not None:
        parts["vae"] = loaded.own_parts["vae"]
    else:
        raise ModelError(_missing(loaded, "VAE", "VAE", VAE_EXAMPLES[loaded.family]))
    _swap_parts(loaded, parts)
    return vae_file


def _missing(loaded: Any, what: str, file_type: str, example: str) -> str:
    return (
        f"{loaded.variant or loaded.family} checkpoint {loaded.path.name!r} has no {what} inside: add a "
        f"{file_type} file (e.g. {example}) to the job's models['{file_type}'] and name it in "
        "override_settings.forge_additional_modules"
    )


def _swap_parts(loaded: Any, parts: dict[str, Any]) -> None:
    """A new pipeline object around the same modules when a part changes: diffusers derives the VAE scale
    factor and image processors from the parts in `__init__`, so in-place swapping would leave them stale."""
    pipe = loaded.pipe
    if all(getattr(pipe, name, None) is module for name, module in parts.items()):
        return
    fresh = type(pipe)(**{**pipe.components, **parts})
    fresh.set_progress_bar_config(disable=True)
    loaded.pipe = fresh
