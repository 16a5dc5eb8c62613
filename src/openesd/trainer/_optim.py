"""kohya optimizer and scheduler names -> torch optimizers and diffusers schedulers, with recorded fallbacks."""

from __future__ import annotations

import importlib.util
import math
from typing import Any

FALLBACK = "AdamW"


def build_optimizer(name: str, groups: list[dict[str, Any]], cuda: bool, warnings: list[str]) -> Any:
    """The named optimizer; one whose package is missing (or needs CUDA) falls back to AdamW, noted in warnings."""
    import torch

    if name == "AdamW8bit":
        if cuda and _importable("bitsandbytes"):
            import bitsandbytes as bnb

            return bnb.optim.AdamW8bit(groups, weight_decay=0.01)
        warnings.append(f"optimizer_type AdamW8bit needs bitsandbytes and a CUDA device; trained with {FALLBACK}")
        name = FALLBACK
    if name == "Lion" and not _importable("lion_pytorch"):
        warnings.append(f"optimizer_type Lion needs the lion-pytorch package; trained with {FALLBACK}")
        name = FALLBACK
    if name == "Prodigy" and not _importable("prodigyopt"):
        warnings.append(f"optimizer_type Prodigy needs the prodigyopt package; trained with {FALLBACK}")
        name = FALLBACK
    if name == "Lion":
        from lion_pytorch import Lion

        return Lion(groups, weight_decay=0.01)
    if name == "Prodigy":
        from prodigyopt import Prodigy

        return Prodigy(groups, weight_decay=0.01)
    if name == "SGDNesterov":
        return torch.optim.SGD(groups, momentum=0.9, nesterov=True)
    if name == "Adafactor":
        from transformers.optimization import Adafactor

        # kohya's Adafactor preset with an explicit learning rate: no relative step, no warmup init.
        return Adafactor(groups, scale_parameter=False, relative_step=False, warmup_init=False)
    # kohya's AdamW: torch defaults (weight decay 0.01); fused where CUDA allows, as one kernel per step.
    return torch.optim.AdamW(groups, weight_decay=0.01, fused=cuda)


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def build_scheduler(config: Any, optimizer: Any, total_steps: int) -> Any:
    from diffusers.optimization import get_scheduler

    warmup = config.lr_warmup_steps
    # kohya reads a value below 1 as a ratio of the total steps.
    warmup_steps = int(math.ceil(warmup * total_steps)) if 0 < warmup < 1 else int(warmup)
    return get_scheduler(
        config.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=warmup_steps,
        num_training_steps=total_steps,
        num_cycles=config.lr_restart_cycles,
        power=config.lr_scheduler_power,
    )
