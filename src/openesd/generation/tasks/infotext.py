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
    """The checkpoint's name as the WebUI writes it: the file name without extension (a folder's name)."""
    return None if path is None else Path(path).stem if Path(path).is_file() else Path(path).name


def vae_name(path: Path | None) -> str | None:
    """The VAE's name as the WebUI writes it (sd_vae.get_loaded_vae_name): the file name with its extension,
    which is also what `override_settings.sd_vae` takes."""
    return None if path is None else Path(path).name


def quote(value: Any) -> str:
    """A value as the WebUI writes it (infotext_utils.quote): str(), JSON-quoted when it holds , : or a newline."""
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if any(c in text for c in ",:\n") else text


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


@dataclass(frozen=True)
class _WebUISampler:
    """What a WebUI 1.10 sampler writes into the infotext (sd_samplers_kdiffusion / _timesteps / _lcm)."""

    schedule: str | None = None  # the schedule "Automatic" stands for (the sampler's 'scheduler' option)
    eta: str | None = None  # "Eta" (k-diffusion, default 1) or "Eta DDIM" (timesteps, default 0); None: no eta
    sigma_params: tuple[str, ...] = ()  # which of s_churn/s_tmin/s_tmax/s_noise its function is given
    ensd: bool = False  # "uses_ensd"
    discards: bool = False  # drops the penultimate sigma itself ('discard_next_to_last_sigma')
    sigmas: bool = True  # takes a sigma schedule (k-diffusion); the timesteps samplers do not


_ALL = ("s_churn", "s_tmin", "s_tmax", "s_noise")
_NOISE = ("s_noise",)
WEBUI_SAMPLERS: dict[str, _WebUISampler] = {
    "DPM++ 2M": _WebUISampler("Karras"),
    "DPM++ SDE": _WebUISampler("Karras", "Eta", _NOISE),
    "DPM++ 2M SDE": _WebUISampler("Exponential", "Eta", _NOISE),
    "DPM++ 2M SDE Heun": _WebUISampler("Exponential", "Eta", _NOISE),
    "DPM++ 2S a": _WebUISampler("Karras", "Eta", _NOISE, ensd=True),
    "DPM++ 3M SDE": _WebUISampler("Exponential", "Eta", _NOISE, discards=True),
    "Euler a": _WebUISampler(None, "Eta", ensd=True),
    "Euler": _WebUISampler(None, None, _ALL),
    "LMS": _WebUISampler(),
    "Heun": _WebUISampler(None, None, _ALL),
    "DPM2": _WebUISampler("Karras", None, _ALL, discards=True),
    "DPM2 a": _WebUISampler("Karras", "Eta", _NOISE, ensd=True, discards=True),
    "DPM fast": _WebUISampler(None, "Eta", _NOISE, ensd=True),
    "DPM adaptive": _WebUISampler(None, "Eta", ensd=True),
    "Restart": _WebUISampler("Karras"),
    "LCM": _WebUISampler(),
    "DDIM": _WebUISampler(eta="Eta DDIM", sigmas=False),
    "DDIM CFG++": _WebUISampler(eta="Eta DDIM", sigmas=False),
    "PLMS": _WebUISampler(sigmas=False),
    "UniPC": _WebUISampler(sigmas=False),
}
# Schedule label -> (name, default rho; None where rho does not apply), in the WebUI's order.
SCHEDULES: dict[str, tuple[str, float | None]] = {
    "Automatic": ("automatic", None),
    "Uniform": ("uniform", None),
    "Karras": ("karras", 7.0),
    "Exponential": ("exponential", None),
    "Polyexponential": ("polyexponential", 1.0),
    "SGM Uniform": ("sgm_uniform", None),
    "KL Optimal": ("kl_optimal", None),
    "Align Your Steps": ("align_your_steps", None),
    "Simple": ("simple", None),
    "Normal": ("normal", None),
    "DDIM": ("ddim", None),
    "Beta": ("beta", None),
}
_SCHEDULE_NAMES = {name: label for label, (name, _) in SCHEDULES.items()} | {"SGMUniform": "SGM Uniform"}
_SIGMA_LABELS = {"s_churn": "Sigma churn", "s_tmin": "Sigma tmin", "s_tmax": "Sigma tmax", "s_noise": "Sigma noise"}
_SIGMA_DEFAULTS = {"s_churn": 0.0, "s_tmin": 0.0, "s_tmax": float("inf"), "s_noise": 1.0}


@dataclass(frozen=True)
class SamplerEntries:
    """The sampler's part of an infotext: "Sampler", "Schedule type", "ENSD" and the sampler's extra entries."""

    sampler: str
    schedule: str
    ensd: int | None
    extra: dict[str, Any]


def split_sampler(sampler_name: str, scheduler: str | None) -> tuple[str, str]:
    """(sampler, schedule label) as the WebUI 1.10 reads them: "DPM++ 2M Karras" is "DPM++ 2M" on the
    Karras schedule, a scheduler given by name ("karras") becomes its label, none is "Automatic"."""
    schedule = _SCHEDULE_NAMES.get(scheduler or "", scheduler) or "Automatic"
    for label, (name, _) in SCHEDULES.items():
        for suffix in (label, name, *(k for k, v in _SCHEDULE_NAMES.items() if v == label and k != name)):
            if sampler_name.endswith(" " + suffix):
                return sampler_name[: -len(suffix) - 1], label
    return sampler_name, schedule


def sampler_entries(settings: Any) -> SamplerEntries:
    """What the WebUI's sampler writes for these settings (settings.sampling holds the options)."""
    options = settings.sampling
    name, schedule = split_sampler(settings.sampler_name, settings.scheduler)
    known = WEBUI_SAMPLERS.get(name, _WebUISampler(sigmas=False))
    if known.sigmas and schedule == "Automatic" and known.schedule:
        schedule = known.schedule
    eta = _eta(known, options)
    extra: dict[str, Any] = {}
    if options.always_discard_next_to_last_sigma and not known.discards:
        extra["Discard penultimate sigma"] = True
    if known.sigmas and schedule != "Automatic":
        extra.update(_schedule_entries(schedule, options))
    if known.sigmas and options.sgm_noise_multiplier:
        extra["SGM noise multiplier"] = True
    if known.eta is not None and eta != (1.0 if known.eta == "Eta" else 0.0):
        extra[known.eta] = eta
    for param in known.sigma_params:
        value = getattr(options, param)
        if value != _SIGMA_DEFAULTS[param]:
            extra[_SIGMA_LABELS[param]] = value
    extra.update(_cfg_entries(options))
    uses_ensd = options.eta_noise_seed_delta != 0 and known.ensd and eta != 0
    return SamplerEntries(name, schedule, options.eta_noise_seed_delta if uses_ensd else None, extra)


def emphasis_entry(emphasis: str, prompt: str, negative_prompt: str) -> str | None:
    """ "Emphasis" is written when it is not "Original" and a prompt holds a bracket (sd_hijack_clip)."""
    brackets = any(c in text for text in (prompt, negative_prompt) for c in "([")
    return emphasis if emphasis != "Original" and brackets else None


def _eta(known: _WebUISampler, options: Any) -> float:
    if options.eta is not None:
        return float(options.eta)
    return float(options.eta_ddim if known.eta == "Eta DDIM" else options.eta_ancestral)


def _schedule_entries(schedule: str, options: Any) -> dict[str, Any]:
    # WebUI get_sigmas: a setting of 0 is the model's / scheduler's own value and is not written.
    entries: dict[str, Any] = {}
    if options.sigma_min != 0:
        entries["Schedule min sigma"] = options.sigma_min
    if options.sigma_max != 0:
        entries["Schedule max sigma"] = options.sigma_max
    default_rho = SCHEDULES.get(schedule, ("", None))[1]
    if default_rho is not None and options.rho not in (0, default_rho):
        entries["Schedule rho"] = options.rho
    if schedule == "Beta":
        entries["Beta schedule alpha"] = options.beta_dist_alpha
        entries["Beta schedule beta"] = options.beta_dist_beta
    return entries


def _cfg_entries(options: Any) -> dict[str, Any]:
    # The CFG denoiser's entries, written from its first steps on.
    return {
        "Skip Early CFG": options.skip_early_cond if options.skip_early_cond > 0 else None,
        "NGMS": options.s_min_uncond if options.s_min_uncond > 0 else None,
        "NGMS all steps": True if options.s_min_uncond > 0 and options.s_min_uncond_all else None,
    }
