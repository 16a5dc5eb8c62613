"""A1111's infotext (the PNG `parameters` chunk) and the WebUI's `info` JSON for a generation."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from openesd.errors import UnsupportedFeature
from openesd.generation.sampling import samplers, schedules

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
    """The checkpoint's name as the WebUI writes it: the file name without extension (a folder's name)."""
    return None if path is None else Path(path).stem if Path(path).is_file() else Path(path).name


def vae_name(path: Path | None) -> str | None:
    """The VAE's name as the WebUI writes it (sd_vae.get_loaded_vae_name): the file name with its extension,
    which is also what `override_settings.sd_vae` takes."""
    return None if path is None else Path(path).name


def quote(value: Any) -> str:
    """A value as the WebUI writes it (infotext_utils.quote): str(), JSON-quoted when it holds , : or a newline."""
    text = str(value)
    if not any(c in text for c in ",:\n"):
        return text
    # The WebUI dumps the value itself: a dict entry (Tiled Diffusion's) is written as a JSON object.
    return json.dumps(value if isinstance(value, dict) else text, ensure_ascii=False)


def format_infotext(prompt: str, negative_prompt: str, params: dict[str, Any]) -> str:
    """`prompt\\nNegative prompt: ...\\nSteps: 20, Sampler: Euler a, ...`; None values are left out, and a value
    equal to its key is written as the key alone, as create_infotext does."""
    line = ", ".join(k if k == v else f"{k}: {quote(v)}" for k, v in params.items() if v is not None)
    negative = f"\nNegative prompt: {negative_prompt}" if negative_prompt else ""
    return f"{prompt}{negative}\n{line}".strip()


@dataclass
class InfoBuilder:
    """Collects per-image prompts and seeds while a job runs, then writes infotexts and `info`.

    `extra` holds the task's entries (hires fix, LoRA hashes) in the order the WebUI adds them; the
    sampler's entries follow (sampler_entries), then `after_sampling` (what only the sampler knows, such
    as "Pad conds"). `inpainting_conditioning` is true when an inpainting model ran (the WebUI then writes
    "Conditional mask weight").
    """

    settings: Any  # payload.GenerationSettings
    model_path: Path | None
    vae_path: Path | None
    seed: int
    subseed: int
    extra: dict[str, Any] = field(default_factory=dict)
    after_sampling: dict[str, Any] = field(default_factory=dict)
    inpainting_conditioning: bool = False
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
        text = format_infotext(prompt, negative_prompt, self.params(prompt, negative_prompt, seed, subseed, size))
        self.infotexts.append(text)
        return text

    def params(self, prompt: str, negative_prompt: str, seed: int, subseed: int, size: tuple[int, int]) -> dict:
        """The WebUI 1.10 create_infotext entries, in its order."""
        s = self.settings
        sampler = sampler_entries(s)
        variation = s.subseed_strength > 0
        resized = s.seed_resize_from_w > 0 and s.seed_resize_from_h > 0
        return {
            "Steps": s.steps,
            "Sampler": sampler.sampler,
            "Schedule type": sampler.schedule,
            "CFG scale": s.cfg_scale,
            "Seed": seed,
            "Size": f"{size[0]}x{size[1]}",
            "Model hash": short_hash(self.model_path),
            "Model": model_name(self.model_path),
            "VAE hash": short_hash(self.vae_path),
            "VAE": vae_name(self.vae_path),
            "Variation seed": subseed if variation else None,
            "Variation seed strength": s.subseed_strength if variation else None,
            "Seed resize from": f"{s.seed_resize_from_w}x{s.seed_resize_from_h}" if resized else None,
            "Denoising strength": s.denoising_strength if s.init_images or s.hires else None,
            "Conditional mask weight": 1.0 if self.inpainting_conditioning else None,
            "Clip skip": s.clip_skip if s.clip_skip > 1 else None,
            "ENSD": sampler.ensd,
            "RNG": s.sampling.randn_source if s.sampling.randn_source != "GPU" else None,
            "Tiling": "True" if s.tiling else None,
            **self.extra,
            "Emphasis": emphasis_entry(s.sampling.emphasis, prompt, negative_prompt),
            **sampler.extra,
            **self.after_sampling,
            "Version": VERSION,
        }

    def extra_generation_params(self) -> dict[str, Any]:
        """The WebUI's `extra_generation_params` in `info`: the task's entries and the sampler's."""
        s = self.settings
        entries = {
            **self.extra,
            "Emphasis": emphasis_entry(s.sampling.emphasis, s.prompt, s.negative_prompt),
            **sampler_entries(s).extra,
            **self.after_sampling,
        }
        return {k: v for k, v in entries.items() if v is not None}

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
                "sampler_name": sampler_entries(s).sampler,
                "cfg_scale": s.cfg_scale,
                "steps": s.steps,
                "batch_size": s.batch_size,
                "restore_faces": False,
                "face_restoration_model": None,
                "sd_model_name": model_name(self.model_path),
                "sd_model_hash": short_hash(self.model_path),
                "sd_vae_name": vae_name(self.vae_path),
                "sd_vae_hash": short_hash(self.vae_path),
                "seed_resize_from_w": s.seed_resize_from_w,
                "seed_resize_from_h": s.seed_resize_from_h,
                "denoising_strength": s.denoising_strength if s.init_images or s.hires else None,
                "extra_generation_params": self.extra_generation_params(),
                "index_of_first_image": 0,
                "infotexts": self.infotexts,
                "styles": [],
                "job_timestamp": time.strftime("%Y%m%d%H%M%S"),
                "clip_skip": s.clip_skip,
                "is_using_inpainting_conditioning": False,
                "version": VERSION,
                # OpenESD's own: override_settings keys that had no effect here, and keys the WebUI lacks.
                "ignored_settings": s.ignored_settings,
                "unknown_settings": s.unknown_settings,
            }
        )


# ---- the sampler's entries, as the WebUI 1.10's samplers write them --------------------------------
# The facts (default schedulers, eta, s_* parameters, ENSD, discarding) are the sampler package's.


@dataclass(frozen=True)
class SamplerEntries:
    """The sampler's part of an infotext: "Sampler", "Schedule type", "ENSD" and the sampler's extra entries
    (which hold "Schedule type" too where the sampler's get_sigmas writes it, as the WebUI's do)."""

    sampler: str
    schedule: str
    ensd: int | None
    extra: dict[str, Any]


def split_sampler(sampler_name: str, scheduler: str | None) -> tuple[str, str]:
    """(sampler, schedule label) as the job runs them (samplers.resolve): "DPM++ 2M Karras" is "DPM++ 2M" on
    the Karras schedule, an alias is the sampler's name, a scheduler given by name ("karras") becomes its
    label, none is "Automatic". A name that does not resolve is kept as given."""
    try:
        spec, label = samplers.resolve(sampler_name, scheduler)
    except UnsupportedFeature:
        return sampler_name, _schedule_label(scheduler)
    return spec.name, label


def sampler_entries(settings: Any) -> SamplerEntries:
    """What the WebUI's sampler writes for these settings (settings.sampling holds the options)."""
    options = settings.sampling
    try:
        spec, label = samplers.resolve(settings.sampler_name, settings.scheduler)
    except UnsupportedFeature:  # infotext is only built for a sampler that resolved: no sampler entries
        return SamplerEntries(settings.sampler_name, _schedule_label(settings.scheduler), None, _cfg_entries(options))
    extra = {
        **schedules.schedule_params(label, spec, options),
        **samplers.sampler_params(spec, options, img2img=bool(settings.init_images)),
        **_cfg_entries(options),
    }
    uses_ensd = options.eta_noise_seed_delta != 0 and spec.uses_ensd and samplers.eta(spec, options) != 0
    ensd = options.eta_noise_seed_delta if uses_ensd else None
    return SamplerEntries(spec.name, extra.get("Schedule type", label), ensd, extra)


def _schedule_label(scheduler: str | None) -> str:
    try:
        return schedules.find_scheduler(scheduler).label if scheduler else "Automatic"
    except UnsupportedFeature:
        return scheduler or "Automatic"


def emphasis_entry(emphasis: str, prompt: str, negative_prompt: str) -> str | None:
    """ "Emphasis" is written when it is not "Original" and a prompt holds a bracket (sd_hijack_clip)."""
    brackets = any(c in text for text in (prompt, negative_prompt) for c in "([")
    return emphasis if emphasis != "Original" and brackets else None


def _cfg_entries(options: Any) -> dict[str, Any]:
    # The CFG denoiser's entries, written from its first steps on.
    return {
        "Skip Early CFG": options.skip_early_cond if options.skip_early_cond > 0 else None,
        "NGMS": options.s_min_uncond if options.s_min_uncond > 0 else None,
        "NGMS all steps": True if options.s_min_uncond > 0 and options.s_min_uncond_all else None,
    }
