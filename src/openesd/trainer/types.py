"""The job a worker hands to `train`, and what `train` reports back while and after it runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from openesd.trainer.config import TrainingConfig

MODEL_TYPES = ("sd_1_5", "sd_xl")


@dataclass
class TrainingJob:
    """One LoRA training: a single-file base checkpoint, a kohya dataset folder and where the files go."""

    base_model: Path
    model_type: str  # "sd_1_5" | "sd_xl" (the request's fm_type)
    dataset_dir: Path
    output_dir: Path
    config: TrainingConfig
    device: str = "auto"  # "auto" = first CUDA device when present, else the CPU


@dataclass
class TrainingProgress:
    """Where a running job stands; step counts optimizer steps, as kohya's progress bar does."""

    step: int
    total_steps: int
    epoch: int
    total_epochs: int
    loss: float
    eta_seconds: float | None


@dataclass
class TrainingResult:
    """The LoRA files written (intermediate epochs first, final last) and how the run ended."""

    files: list[Path]
    steps: int
    stopped: bool
    ignored_keys: list[str]
    warnings: list[str] = field(default_factory=list)
