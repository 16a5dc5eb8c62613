"""OpenESD's LoRA trainer: kohya configuration keys and dataset folders in, kohya-format LoRA files out."""

from openesd.training.config import TrainingConfig
from openesd.training.errors import TrainingError
from openesd.training.trainer import train
from openesd.training.types import TrainingJob, TrainingProgress, TrainingResult

__all__ = ["TrainingConfig", "TrainingError", "TrainingJob", "TrainingProgress", "TrainingResult", "train"]
