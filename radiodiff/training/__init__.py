"""Training: the loop, checkpoints and logs. The only part of the package that knows accelerate."""

from .checkpoints import CheckpointError
from .entry import main
from .trainer import Trainer, TrainingError, train

__all__ = ["CheckpointError", "Trainer", "TrainingError", "main", "train"]
