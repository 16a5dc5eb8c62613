"""Pick the torch device and dtypes a worker runs on: CUDA with half precision when present, CPU fp32 otherwise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DeviceSpec:
    """Where the pipelines live and in which precision; SDXL's VAE overflows in fp16, so it may differ."""

    device: str
    dtype: Any
    vae_dtype_sdxl: Any

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")


def resolve(device: str = "auto") -> DeviceSpec:
    """`auto` -> first CUDA device if any, else CPU; an explicit `cuda:N` or `cpu` is taken as given."""
    import torch

    from openesd.errors import GenerationError

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise GenerationError(f"device {device!r} asked for, but torch sees no CUDA device")
    if device.startswith("cuda"):
        # SDXL's VAE overflows in fp16; its config sets force_upcast, so diffusers decodes in fp32.
        return DeviceSpec(device, torch.float16, torch.float16)
    if device != "cpu":
        raise GenerationError(f"unknown device {device!r}; use 'auto', 'cpu' or 'cuda[:N]'")
    return DeviceSpec("cpu", torch.float32, torch.float32)
