"""Training: the shared loop, checkpoints and logs, and the two stages' steps. The only part of the package that
knows accelerate."""

from .checkpoints import CheckpointError
from .entry import main, main_ldm
from .ldm_trainer import LDMTrainer, train_ldm
from .trainer import Trainer, TrainingError
from .vae_trainer import VAETrainer, train

__all__ = [
    "CheckpointError",
    "LDMTrainer",
    "Trainer",
    "TrainingError",
    "VAETrainer",
    "main",
    "main_ldm",
    "train",
    "train_ldm",
]
