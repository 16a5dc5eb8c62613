"""LoRAs on a compiled UNet: merged into its weights in place, so the graph dynamo traced never changes.

peft wraps each target layer in a new module and keeps the adapter scales as Python floats; a compiled
UNet guards on both, so every LoRA change would recompile it. Here the peft layers are put into the UNet
only while diffusers loads, weighs or deletes adapters; before the UNet runs they are taken out again,
and the job's LoRAs are in the base weights (peft's own `merge`, the way the WebUI applies a LoRA). The
UNet the compiled graph sees keeps the same modules and the same parameter tensors; only their values
change. The original values of every weight a LoRA touched are kept once, beside it, and copied back
before the next job. Text encoders are not compiled: they keep peft's side modules.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

# The state is kept on the UNet: pipelines derived for a job (job.derive) share it.
_STATE = "_openesd_merged_loras"


@dataclass
class MergedLoras:
    """The peft layers taken out of one UNet, and the original values of the weights LoRAs were merged into."""

    layers: list[tuple[Any, str, Any]] = field(default_factory=list)  # (parent, attribute, peft layer)
    originals: dict[int, tuple[Any, Any]] = field(default_factory=dict)  # id(parameter): (parameter, values)

    @contextmanager
    def attached(self, unet: Any) -> Iterator[None]:
        """The peft layers in the UNet for diffusers' LoRA calls; out again (all of them) when done."""
        for parent, attribute, layer in self.layers:
            setattr(parent, attribute, layer)
        try:
            yield
        finally:
            self._detach(unet)

    def restore(self, unet: Any) -> None:
        """The UNet's own weights again: what the previous job merged is overwritten, never subtracted."""
        for parameter, values in self.originals.values():
            parameter.data.copy_(values)
        _refresh_fused(unet)

    def merge(self, unet: Any) -> None:
        """Add every active adapter, at its job weight, into the base weights (the peft layers must be in)."""
        from peft.tuners.tuners_utils import BaseTunerLayer

        for module in unet.modules():
            if not isinstance(module, BaseTunerLayer) or module.disable_adapters:
                continue
            active = [name for name in module.active_adapters if name in module.lora_A]
            if not active:
                continue
            base = module.get_base_layer()
            for parameter in (base.weight, getattr(base, "bias", None)):
                if parameter is not None and id(parameter) not in self.originals:
                    self.originals[id(parameter)] = (parameter, parameter.detach().clone())
            module.merge(adapter_names=active)
            # restore() puts the weights back by copy; peft must not think it has to subtract anything.
            module.merged_adapters = []
        _refresh_fused(unet)

    def _detach(self, unet: Any) -> None:
        from peft.tuners.tuners_utils import BaseTunerLayer

        self.layers = []
        for parent in list(unet.modules()):
            for attribute, child in list(parent.named_children()):
                if isinstance(child, BaseTunerLayer):
                    self.layers.append((parent, attribute, child))
                    setattr(parent, attribute, child.get_base_layer())


def enable(unet: Any) -> None:
    """From now on, this UNet's LoRAs are merged into its weights (called when it is compiled)."""
    if getattr(unet, _STATE, None) is None:
        setattr(unet, _STATE, MergedLoras())


def state(unet: Any) -> MergedLoras | None:
    return getattr(unet, _STATE, None)


def _refresh_fused(unet: Any) -> None:
    """Fused QKV projections are copies of to_q/to_k/to_v made when fused: copy the current values in place."""
    import torch

    with torch.no_grad():
        for module in unet.modules():
            if not getattr(module, "fused_projections", False):
                continue
            parts = ("to_q", "to_k", "to_v") if hasattr(module, "to_qkv") else ("to_k", "to_v")
            fused = module.to_qkv if hasattr(module, "to_qkv") else module.to_kv
            fused.weight.copy_(torch.cat([getattr(module, part).weight for part in parts]))
            if fused.bias is not None:
                fused.bias.copy_(torch.cat([getattr(module, part).bias for part in parts]))
