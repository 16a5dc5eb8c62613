"""OpenESD's LoRA trainer: kohya configuration keys and dataset folders in, kohya-format LoRA files out."""

from openesd.trainer.config import TrainingConfig
from openesd.trainer.errors import TrainingError
from openesd.trainer.loop import train
from openesd.trainer.types import TrainingJob, TrainingProgress, TrainingResult

__all__ = ["TrainingConfig", "TrainingError", "TrainingJob", "TrainingProgress", "TrainingResult", "train"]
