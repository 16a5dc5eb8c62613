"""One txt2img/img2img job on a cached checkpoint: model selection, per-job pipeline state, prompts, progress.

A cached pipeline is shared by every job, so everything a job changes (scheduler, VAE, LoRAs,
tiling) is set here at the start of each job, never left to a previous one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from openesd.errors import ModelError, PayloadError, UnsupportedFeature
from openesd.generation.types import ModelFiles

ProgressCallback = Callable[[int, int], None]
_BUILTIN_VAE = ("", "Automatic", "None", "auto")


def _find(paths: list[Path], wanted: str, kind: str) -> Path:
    """A1111 names a model by file name, stem, or title `name.safetensors [hash]`."""
    name = re.sub(r"\s*\[[0-9a-fA-F]+\]\s*$", "", wanted.strip())
    for path in paths:
        if name in (path.name, path.stem, str(path)):
            return path
    for path in paths:
        if Path(name).stem == path.stem:
            return path
    available = ", ".join(p.name for p in paths) or "none"
    raise ModelError(f"{kind} model {wanted!r} is not among this job's {kind} files: {available}")


def select_checkpoint(models: ModelFiles, wanted: str | None) -> Path:
    paths = [Path(p) for p in models.get("Stable-diffusion", [])]
    if not paths:
        raise ModelError("the job names no Stable-diffusion checkpoint (models['Stable-diffusion'] is empty)")
    return _find(paths, wanted, "Stable-diffusion") if wanted else paths[0]


def select_vae(models: ModelFiles, wanted: str | None, checkpoint: Path) -> Path | None:
    """None means the checkpoint's own VAE ("Automatic" without a same-named VAE file, or "None")."""
    paths = [Path(p) for p in models.get("VAE", []) if Path(p).name not in _BUILTIN_VAE and Path(p).is_file()]
    if wanted and wanted not in _BUILTIN_VAE:
        return _find(paths, wanted, "VAE")
    if wanted == "None":
        return None
    # "Automatic": a VAE named like the checkpoint (A1111 looks for `<checkpoint>.vae.*`).
    for path in paths:
        if path.name.split(".")[0] == checkpoint.stem:
            return path
    return None


def resolve_loras(prompt: str, models: ModelFiles) -> tuple[str, list[tuple[Path, float]]]:
    """The prompt without `<lora:name:w>` tags, and the LoRA files it names (by file stem)."""
    from openesd.generation.prompts.encoding import extract_loras

    text, wanted = extract_loras(prompt)
    paths = [Path(p) for p in models.get("Lora", [])]
    found = []
    for name, weight in wanted:
        match = [p for p in paths if p.stem == name or p.name == name]
        if not match:
            available = ", ".join(p.stem for p in paths) or "none"
            raise ModelError(f"LoRA {name!r} named in the prompt is not among this job's Lora files: {available}")
        found.append((match[0], weight))
    return text, found


@dataclass
class Progress:
    """Turns per-pass diffusers step callbacks into one (step, total) sequence for the whole job."""

    total: int
    callback: ProgressCallback | None
    done: int = 0
    previewer: Any = None  # previews.Previewer: the job's live previews, after the progress report

    def plan(self, total: int) -> None:
        """The job's real number of model calls, once the sampler is known (second-order samplers double it)."""
        self.total = max(total, 1)

    def hook(self) -> Callable[..., dict]:
        def on_step_end(pipe: Any, step: int, timestep: Any, kwargs: dict) -> dict:
            # the sampler stand-in keeps the call's prediction (x0)
            self.call_done(getattr(pipe.scheduler, "denoised", None))
            return kwargs

        return on_step_end

    def call_done(self, denoised: Any = None) -> None:
        """One model call done; `denoised` is its prediction of the clean latents (B, C, h, w), for previews."""
        self.done += 1
        if self.callback is not None:
            self.callback(min(self.done, self.total), self.total)
        if self.previewer is not None:
            self.previewer.after_call(min(self.done, self.total), self.total, denoised)


@dataclass
class PreparedModel:
    """A checkpoint ready for one job: which file, its family, and the base pipeline."""

    pipe: Any
    family: str
    inpainting: bool
    path: Path
    vae_path: Path | None
    embeddings: list[Path] = field(default_factory=list)

    @property
    def vae_scale_factor(self) -> int:
        return int(getattr(self.pipe, "vae_scale_factor", 8))


def set_tiling(pipe: Any, enabled: bool) -> None:
    """Seamless tiling as A1111 does it: circular padding in every UNet and VAE convolution."""
    import torch

    for model in (pipe.unet, pipe.vae):
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.padding_mode = "circular" if enabled else "zeros"


def set_vae_tiling(pipe: Any, enabled: bool) -> None:
    if enabled:
        pipe.vae.enable_tiling()
    else:
        pipe.vae.disable_tiling()


def apply_loras(pipe: Any, loras: list[tuple[Path, float]]) -> None:
    """Activate exactly these LoRAs (none: all off); the checkpoint itself is never reloaded."""
    from openesd.generation.adapters import lora

    lora.apply_loras(pipe, loras)


PIPELINES = {
    ("sd", "txt2img"): "StableDiffusionPipeline",
    ("sd", "img2img"): "StableDiffusionImg2ImgPipeline",
    ("sd", "inpaint"): "StableDiffusionInpaintPipeline",
    ("sd", "controlnet-txt2img"): "StableDiffusionControlNetPipeline",
    ("sd", "controlnet-img2img"): "StableDiffusionControlNetImg2ImgPipeline",
    ("sd", "controlnet-inpaint"): "StableDiffusionControlNetInpaintPipeline",
    ("sdxl", "txt2img"): "StableDiffusionXLPipeline",
    ("sdxl", "img2img"): "StableDiffusionXLImg2ImgPipeline",
    ("sdxl", "inpaint"): "StableDiffusionXLInpaintPipeline",
    ("sdxl", "controlnet-txt2img"): "StableDiffusionXLControlNetPipeline",
    ("sdxl", "controlnet-img2img"): "StableDiffusionXLControlNetImg2ImgPipeline",
    ("sdxl", "controlnet-inpaint"): "StableDiffusionXLControlNetInpaintPipeline",
    ("sdxl_refiner", "img2img"): "StableDiffusionXLImg2ImgPipeline",
    ("sdxl_refiner", "inpaint"): "StableDiffusionXLInpaintPipeline",
}


def derive(model: PreparedModel, kind: str, scheduler: Any, controlnet: Any = None, unet: Any = None) -> Any:
    """A pipeline of `kind` sharing the loaded components (no copy, no reload); `unet` replaces the UNet."""
    import diffusers

    family = "sd" if model.family in ("sd1", "sd2") else model.family
    name = PIPELINES.get((family, kind))
    if name is None:
        raise UnsupportedFeature(f"a {model.family} checkpoint ({model.path.name}) cannot run {kind}")
    cls = getattr(diffusers, name)
    # Built here rather than with `from_pipe`, which ends by casting every module to one dtype
    # (fp32 unless told): in place, so the cached fp16 weights of a GPU worker would turn fp32.
    modules, options = cls._get_signature_keys(cls)
    source = model.pipe
    parts = {k: v for k, v in source.components.items() if k in modules}
    parts["scheduler"] = scheduler
    if controlnet is not None:
        parts["controlnet"] = controlnet
    if unet is not None:
        parts["unet"] = unet
    config = {k: v for k, v in source.config.items() if k in options}
    pipe = cls(**parts, **config)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def check_size(width: int, height: int, factor: int) -> None:
    if width % factor or height % factor:
        raise PayloadError(f"width and height must be multiples of {factor}, got {width}x{height}")
