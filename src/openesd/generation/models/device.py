"""Pick the torch device and dtypes a worker runs on: CUDA in half precision when present, CPU fp32 otherwise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The weights' precision a setting may name, per device kind (fp16 on the CPU is slow and poorly supported).
CUDA_DTYPES = ("fp16", "bf16", "fp32")
CPU_DTYPES = ("fp32", "bf16")


@dataclass(frozen=True)
class DeviceSpec:
    """Where the pipelines live and in which precision; SDXL's VAE overflows in fp16, so it may differ."""

    device: str
    dtype: Any
    vae_dtype_sdxl: Any

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")


def resolve(
    device: str = "auto", cuda_dtype: str = "fp16", cpu_dtype: str = "fp32", sdxl_vae_fp32: bool = True
) -> DeviceSpec:
    """`auto` -> first CUDA device if any, else CPU; an explicit `cuda:N` or `cpu` is taken as given.

    `sdxl_vae_fp32`: with fp16 weights, SDXL's VAE (config `force_upcast`) stays in fp32 rather than being
    cast to fp32 and back around every encode/decode; bf16 has fp32's range, so it never needs that."""
    import torch

    from openesd.errors import GenerationError

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise GenerationError(f"device {device!r} asked for, but torch sees no CUDA device")
    if device.startswith("cuda"):
        dtype = _dtype(cuda_dtype, CUDA_DTYPES, "CUDA")
        upcast = sdxl_vae_fp32 and dtype == torch.float16
        return DeviceSpec(device, dtype, torch.float32 if upcast else dtype)
    if device != "cpu":
        raise GenerationError(f"unknown device {device!r}; use 'auto', 'cpu' or 'cuda[:N]'")
    dtype = _dtype(cpu_dtype, CPU_DTYPES, "the CPU")
    return DeviceSpec("cpu", dtype, dtype)


def _dtype(name: str, valid: tuple[str, ...], where: str) -> Any:
    import torch

    from openesd.errors import GenerationError

    if name not in valid:
        raise GenerationError(f"weights dtype {name!r} is not supported on {where}; valid: {', '.join(valid)}")
    return {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[name]
