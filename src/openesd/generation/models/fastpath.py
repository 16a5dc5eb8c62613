"""The GPU fast path on a loaded pipeline: memory format, attention kernel, fused QKV, torch.compile, VAE tiling.

Each piece is one setting with a safe default (docs/performance.md) and is measured on its own by
bench/generate.py. The dtype of the weights is chosen with the device (models/device.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from openesd.settings import Settings

Attention = Literal["sdpa", "classic"]
CompileMode = Literal["off", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]
# Marks a pipeline's UNet whose QKV projections are fused; LoRAs need them apart (see `before_loras`).
_FUSED = "_openesd_qkv_fused"


@dataclass(frozen=True)
class FastPath:
    """What to apply to each loaded checkpoint; all off is exactly the plain diffusers pipeline."""

    cuda_dtype: str = "fp16"  # the weights' precision (models/device.py validates it)
    cpu_dtype: str = "fp32"
    sdxl_vae_fp32: bool = True
    channels_last: bool = False
    attention: Attention = "sdpa"
    fuse_qkv: bool = False
    compile_mode: CompileMode = "off"
    compile_cache_dir: Path | None = None
    # "inductor" in service; "eager" runs dynamo alone, so that tests count graphs without minutes of inductor.
    compile_backend: str = "inductor"
    vae_tiling_pixels: int = 0  # decode tiled (and sliced) when width*height*batch exceeds this; 0: never
    # FLUX.1 / SD 3.5 only (generation/quant): the transformer's storage and where the text encoders run.
    flow_weights: str = "auto"  # auto | fp8 | full
    text_encoder_offload: str = "none"  # none | cpu | swap

    @classmethod
    def from_settings(cls, settings: Settings) -> FastPath:
        return cls(
            cuda_dtype=settings.weights_dtype_cuda,
            cpu_dtype=settings.weights_dtype_cpu,
            sdxl_vae_fp32=settings.sdxl_vae_fp32,
            channels_last=settings.channels_last,
            attention=settings.attention,
            fuse_qkv=settings.fuse_qkv,
            compile_mode=settings.compile_mode,
            compile_cache_dir=settings.data_dir / "cache" / "inductor",
            vae_tiling_pixels=settings.vae_tiling_pixels,
            flow_weights=settings.flow_transformer_weights,
            text_encoder_offload=settings.text_encoder_offload,
        )

    def wants_vae_tiling(self, width: int, height: int, batch: int) -> bool:
        return self.vae_tiling_pixels > 0 and width * height * batch > self.vae_tiling_pixels


def apply(pipe: Any, options: FastPath) -> None:
    """Once per loaded checkpoint, before its first job: every setting that is on, in an order that composes."""
    import torch

    if options.attention == "classic":
        from diffusers.models.attention_processor import AttnProcessor

        # diffusers picks SDPA (AttnProcessor2_0) by itself; "classic" is the baseline the bench compares with.
        pipe.unet.set_attn_processor(AttnProcessor())
        pipe.vae.set_attn_processor(AttnProcessor())
    if options.fuse_qkv:
        fuse(pipe)
    if options.channels_last:
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
    if options.compile_mode != "off":
        compile_models(pipe, options)


def fuse(pipe: Any) -> None:
    """One QKV matmul instead of three in every attention block of the UNet and the VAE."""
    if getattr(pipe.unet, _FUSED, False):
        return
    pipe.unet.fuse_qkv_projections()
    pipe.vae.fuse_qkv_projections()
    setattr(pipe.unet, _FUSED, True)


def unfuse(pipe: Any) -> None:
    if not getattr(pipe.unet, _FUSED, False):
        return
    pipe.unet.unfuse_qkv_projections()
    pipe.vae.unfuse_qkv_projections()
    setattr(pipe.unet, _FUSED, False)


def before_loras(pipe: Any, loras: list, options: FastPath) -> None:
    """peft puts a LoRA on to_q/to_k/to_v, which a fused processor never calls: a job with LoRAs runs unfused
    (the LoRA counts), a job without runs fused again. Fusing copies base weights only, so it needs the
    LoRAs switched off, which `apply_loras([])` does right after this. A compiled UNet stays fused: its LoRAs
    are merged into to_q/to_k/to_v and copied into the fused projection in place (adapters/_merged.py)."""
    if not options.fuse_qkv or options.compile_mode != "off":
        return
    if loras:
        unfuse(pipe)
    else:
        fuse(pipe)


def compile_models(pipe: Any, options: FastPath) -> None:
    """Compile the UNet and the VAE decoder in place (`Module.compile`: the same objects, so LoRA loading and
    derived pipelines see them), with inductor's cache under the data directory so a restart reuses it.
    The UNet's LoRAs are merged into its weights from now on, so a LoRA change does not recompile it."""
    from openesd.generation.adapters import _merged

    if options.compile_cache_dir is not None:
        options.compile_cache_dir.mkdir(parents=True, exist_ok=True)
        # Read by inductor at each compile; an operator's own setting wins.
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(options.compile_cache_dir))
    _merged.enable(pipe.unet)
    # peft freezes the base weights when it loads a LoRA, and dynamo guards on requires_grad: frozen from the
    # start, the first LoRA does not recompile either (a worker never trains).
    pipe.unet.requires_grad_(False)
    pipe.vae.requires_grad_(False)
    how = (
        {"mode": options.compile_mode}
        if options.compile_backend == "inductor"
        else {"backend": options.compile_backend}
    )
    pipe.unet.compile(**how)
    pipe.vae.decoder.compile(**how)


def set_vae_tiling(pipe: Any, enabled: bool) -> None:
    """Tiled and sliced VAE: large images decode in bounded memory (tiles are blended, so pixels differ a little)."""
    if enabled:
        pipe.vae.enable_tiling()
        pipe.vae.enable_slicing()
    else:
        pipe.vae.disable_tiling()
        pipe.vae.disable_slicing()
