"""A1111's infotext (the PNG `parameters` chunk) and the WebUI's `info` JSON for a generation."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

VERSION = "OpenESD"


@lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def short_hash(path: Path | None) -> str | None:
    """A1111's 10-character model hash (sha256 prefix); a folder has none."""
    if path is None or not Path(path).is_file():
        return None
    stat = Path(path).stat()
    return _sha256(str(path), stat.st_size, stat.st_mtime_ns)[:10]


def model_name(path: Path | None) -> str | None:
    return None if path is None else Path(path).stem if Path(path).is_file() else Path(path).name


def _value(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value)
    # A1111 quotes a value that would break the "k: v, k: v" line.
    return json.dumps(text, ensure_ascii=False) if any(c in text for c in ',:"\n') else text


def format_infotext(prompt: str, negative_prompt: str, params: dict[str, Any]) -> str:
    """`prompt\\nNegative prompt: ...\\nSteps: 20, Sampler: Euler a, ...`; None values are left out."""
    line = ", ".join(f"{k}: {_value(v)}" for k, v in params.items() if v is not None)
    negative = f"\nNegative prompt: {negative_prompt}" if negative_prompt else ""
    return f"{prompt}{negative}\n{line}"


@dataclass
class InfoBuilder:
    """Collects per-image prompts and seeds while a job runs, then writes infotexts and `info`."""

    settings: Any  # payload.GenerationSettings
    model_path: Path | None
    vae_path: Path | None
    seed: int
    subseed: int
    extra: dict[str, Any] = field(default_factory=dict)
    all_seeds: list[int] = field(default_factory=list)
    all_subseeds: list[int] = field(default_factory=list)
    all_prompts: list[str] = field(default_factory=list)
    all_negative_prompts: list[str] = field(default_factory=list)
    infotexts: list[str] = field(default_factory=list)

    def add_image(self, prompt: str, negative_prompt: str, seed: int, subseed: int, size: tuple[int, int]) -> str:
        self.all_prompts.append(prompt)
        self.all_negative_prompts.append(negative_prompt)
        self.all_seeds.append(seed)
        self.all_subseeds.append(subseed)
        text = format_infotext(prompt, negative_prompt, self._params(seed, subseed, size))
        self.infotexts.append(text)
        return text

    def _params(self, seed: int, subseed: int, size: tuple[int, int]) -> dict[str, Any]:
        s = self.settings
        variation = s.subseed_strength > 0
        resized = s.seed_resize_from_w > 0 and s.seed_resize_from_h > 0
        return {
            "Steps": s.steps,
            "Sampler": s.sampler_name,
            "Schedule type": s.scheduler if s.scheduler and s.scheduler != "Automatic" else None,
            "CFG scale": s.cfg_scale,
            "Seed": seed,
            "Size": f"{size[0]}x{size[1]}",
            "Model hash": short_hash(self.model_path),
            "Model": model_name(self.model_path),
            "VAE hash": short_hash(self.vae_path),
            "VAE": model_name(self.vae_path),
            "Variation seed": subseed if variation else None,
            "Variation seed strength": s.subseed_strength if variation else None,
            "Seed resize from": f"{s.seed_resize_from_w}x{s.seed_resize_from_h}" if resized else None,
            "Denoising strength": s.denoising_strength if s.init_images or s.hires else None,
            "Clip skip": s.clip_skip if s.clip_skip > 1 else None,
            "Tiling": True if s.tiling else None,
            **self.extra,
            "Version": VERSION,
        }

    def info_json(self) -> str:
        s = self.settings
        return json.dumps(
            {
                "prompt": s.prompt,
                "all_prompts": self.all_prompts,
                "negative_prompt": s.negative_prompt,
                "all_negative_prompts": self.all_negative_prompts,
                "seed": self.seed,
                "all_seeds": self.all_seeds,
                "subseed": self.subseed,
                "all_subseeds": self.all_subseeds,
                "subseed_strength": s.subseed_strength,
                "width": s.width,
                "height": s.height,
                "sampler_name": s.sampler_name,
                "cfg_scale": s.cfg_scale,
                "steps": s.steps,
                "batch_size": s.batch_size,
                "restore_faces": False,
                "face_restoration_model": None,
                "sd_model_name": model_name(self.model_path),
                "sd_model_hash": short_hash(self.model_path),
                "sd_vae_name": model_name(self.vae_path),
                "sd_vae_hash": short_hash(self.vae_path),
                "seed_resize_from_w": s.seed_resize_from_w,
                "seed_resize_from_h": s.seed_resize_from_h,
                "denoising_strength": s.denoising_strength if s.init_images or s.hires else None,
                "extra_generation_params": {k: v for k, v in self.extra.items() if v is not None},
                "index_of_first_image": 0,
                "infotexts": self.infotexts,
                "styles": [],
                "job_timestamp": time.strftime("%Y%m%d%H%M%S"),
                "clip_skip": s.clip_skip,
                "is_using_inpainting_conditioning": False,
                "version": VERSION,
            }
        )
