"""What the WebUI's listing routes show: the model files the caller may use, as A1111 names them, and the
samplers, schedulers, upscalers and scripts OpenESD's worker runs. Read from the checkpoint records on each
call, so a file uploaded a moment ago is listed at once (`refresh-checkpoints` has nothing to do)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy.orm import Session

from openesd.auth.access import Access
from openesd.checkpoints.repository import CheckpointRepository
from openesd.errors import BadRequest
from openesd.generation.payload.script_names import SUPPORTED as SELECTABLE_SCRIPTS
from openesd.generation.payload.scripts import KNOWN as ALWAYSON_SCRIPTS
from openesd.generation.sampling.samplers import SAMPLERS
from openesd.generation.sampling.schedules import SCHEDULERS
from openesd.generation.tasks.hires import LATENT_MODES
from openesd.generation.tasks.upscaler_names import PIL_UPSCALERS, WEBUI_ALIASES

_TITLE_HASH = re.compile(r"\s*\[[0-9a-fA-F]+\]\s*$")
_SAMPLER_FLAGS = ("second_order", "brownian_noise", "uses_ensd", "discard_next_to_last_sigma")


@dataclass(frozen=True)
class ModelFile:
    """One file name of an Active checkpoint the caller may use."""

    kind: str
    name: str
    sha256: str | None

    @property
    def stem(self) -> str:
        return PurePosixPath(self.name).stem

    @property
    def title(self) -> str:
        """A1111's checkpoint title: `name [short hash]` (the short hash is the sha256's first 10 digits)."""
        return f"{self.name} [{self.sha256[:10]}]" if self.sha256 else self.name


class Catalog:
    def __init__(self, session: Session, access: Access):
        self.checkpoints = CheckpointRepository(session)
        self.access = access

    def files(self, kind: str) -> list[ModelFile]:
        """Every file of `kind` the caller may use, newest checkpoint first."""
        visible = self.access.only_visible(self.checkpoints.list(["Active"], [kind]))
        return [ModelFile(kind, name, (c.hashes or {}).get(name)) for c in visible for name in c.names]

    def find(self, kind: str, wanted: str) -> ModelFile:
        """The file a WebUI client names: by file name, stem or title `name [hash]`; 400 listing the choices."""
        name = _TITLE_HASH.sub("", wanted.strip())
        files = self.files(kind)
        for file in files:
            if name in (file.name, file.stem):
                return file
        available = ", ".join(f.name for f in files) or "none"
        raise BadRequest(f"{kind} model {wanted!r} is not among the {kind} files you may use: {available}")

    def default_checkpoint(self) -> ModelFile:
        files = self.files("Stable-diffusion")
        if not files:
            raise BadRequest("there is no Active Stable-diffusion checkpoint you may use: upload one first")
        return files[0]

    # -- the listing routes ------------------------------------------------------------------------------
    def sd_models(self) -> list[dict[str, Any]]:
        return [
            {
                "title": f.title,
                "model_name": f.stem,
                "hash": f.sha256[:10] if f.sha256 else None,
                "sha256": f.sha256,
                "filename": f.name,
                "config": None,
            }
            for f in self.files("Stable-diffusion")
        ]

    def sd_vae(self) -> list[dict[str, str]]:
        return [{"model_name": f.name, "filename": f.name} for f in self.files("VAE")]

    def loras(self) -> list[dict[str, Any]]:
        return [{"name": f.stem, "alias": f.stem, "path": f.name, "metadata": {}} for f in self.files("Lora")]

    def embeddings(self) -> dict[str, Any]:
        """Every embedding file, as `loaded`: the worker loads each one a prompt names. Its vectors are read
        by the worker only, so `shape` and `vectors` are 0 (unknown) here."""
        loaded = {
            f.stem: {"step": None, "sd_checkpoint": None, "sd_checkpoint_name": None, "shape": 0, "vectors": 0}
            for f in self.files("embeddings")
        }
        return {"loaded": loaded, "skipped": {}}

    def upscalers(self) -> list[dict[str, Any]]:
        builtin = [
            {"name": name, "model_name": None, "model_path": None, "model_url": None, "scale": 4}
            for name in PIL_UPSCALERS
        ]
        aliases = {stem: alias for alias, stem in WEBUI_ALIASES.items()}
        models = [
            {"name": aliases.get(f.stem, f.stem), "model_name": f.stem, "model_path": f.name, "model_url": None}
            | {"scale": 4}
            for f in self.files("ESRGAN")
        ]
        return builtin + models


def samplers() -> list[dict[str, Any]]:
    listed = []
    for spec in SAMPLERS.values():
        options: dict[str, Any] = {"scheduler": spec.default_scheduler} if spec.default_scheduler else {}
        options |= {flag: True for flag in _SAMPLER_FLAGS if getattr(spec, flag)}
        listed.append({"name": spec.name, "aliases": list(spec.aliases), "options": options})
    return listed


def schedulers() -> list[dict[str, Any]]:
    return [
        {
            "name": s.name,
            "label": s.label,
            "aliases": list(s.aliases) or None,
            "default_rho": s.default_rho,
            "need_inner_model": s.need_inner_model,
        }
        for s in SCHEDULERS
    ]


def latent_upscale_modes() -> list[dict[str, str]]:
    return [{"name": name} for name in LATENT_MODES]


def scripts() -> dict[str, list[str]]:
    """The selectable scripts' titles in lower case, as the WebUI lists them, then the always-on ones."""
    names = [title.lower() for title in SELECTABLE_SCRIPTS] + [name.lower() for name in ALWAYSON_SCRIPTS]
    return {"txt2img": names, "img2img": names}


def script_info() -> list[dict[str, Any]]:
    """Each script for both tabs. Their arguments are the WebUI's own (OpenESD has no UI to describe them)."""
    entries = [(title.lower(), False) for title in SELECTABLE_SCRIPTS] + [(n.lower(), True) for n in ALWAYSON_SCRIPTS]
    return [
        {"name": name, "is_alwayson": alwayson, "is_img2img": img2img, "args": []}
        for name, alwayson in entries
        for img2img in (False, True)
    ]
