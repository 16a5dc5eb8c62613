"""fp8 (e4m3) weight storage with compute in the pipeline's precision, one linear layer at a time.

The weights stay one byte each in memory; each layer's weight is widened to the input's dtype only for
its own matmul, so the whole model is never held in bf16. The bytes are kept as uint8 so that nothing
that walks the parameters takes them for floats: `module.to(dtype)` leaves them alone, diffusers reads
the model's dtype from the other parameters, and peft keeps a LoRA's own weights in their precision.
torch is imported at the top: only the worker's loading path imports this module.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

# e4m3's largest finite value: a weight scaled by amax / E4M3_MAX uses the format's whole range.
E4M3_MAX = 448.0


FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)


def is_fp8(tensor: Any) -> bool:
    return getattr(tensor, "dtype", None) in FP8_DTYPES


def quantise(weight: Any) -> tuple[Any, Any]:
    """(e4m3 values, per-tensor fp32 scale) with weight ≈ values * scale."""
    wide = weight.detach().float()
    amax = wide.abs().max()
    scale = amax / E4M3_MAX if amax > 0 else torch.ones((), dtype=torch.float32)
    return (wide / scale).to(torch.float8_e4m3fn), scale.reshape(()).float()


class Fp8Linear(nn.Linear):
    """nn.Linear whose weight is stored as fp8 bytes (uint8) and a per-tensor scale."""

    def __init__(self, in_features: int, out_features: int, bias: bool, fp8_dtype: torch.dtype) -> None:
        super().__init__(in_features, out_features, bias=bias, device="meta")
        self.fp8_dtype = fp8_dtype
        empty = torch.empty(out_features, in_features, dtype=torch.uint8, device="meta")
        self.weight = nn.Parameter(empty, requires_grad=False)
        self.register_buffer("weight_scale", torch.ones((), dtype=torch.float32, device="meta"))

    def dequantised(self, dtype: torch.dtype) -> torch.Tensor:
        weight = self.weight.view(self.fp8_dtype).to(dtype)
        return weight.mul_(self.weight_scale.to(dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return nn.functional.linear(x, self.dequantised(x.dtype), bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, storage={str(self.fp8_dtype).removeprefix('torch.')}"


def replace_linears(model: Any, names: set[str], fp8_dtypes_by_name: dict[str, Any]) -> None:
    """Swap the named nn.Linear modules of a (meta-device) model for empty Fp8Linear ones."""
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        old = getattr(parent, child)
        new = Fp8Linear(old.in_features, old.out_features, old.bias is not None, fp8_dtypes_by_name[name])
        setattr(parent, child, new)


def to_fp8(model: Any, prefixes: tuple[str, ...]) -> Any:
    """An already loaded model with its linear layers under `prefixes` stored as e4m3, in place, one at a time
    (the peak is one layer's fp32 copy, not a second model)."""
    names = [n for n, m in model.named_modules() if type(m) is nn.Linear and n.startswith(prefixes)]
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        old = getattr(parent, child)
        values, scale = quantise(old.weight)
        new = Fp8Linear(old.in_features, old.out_features, old.bias is not None, torch.float8_e4m3fn)
        new.weight = nn.Parameter(values.view(torch.uint8), requires_grad=False)
        new.weight_scale = scale.to(old.weight.device)
        new.bias = old.bias
        setattr(parent, child, new)
    return model


def storage_bytes(model: Any) -> int:
    """Bytes of a module's parameters and buffers as stored (fp8 weights count one byte each)."""
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)
