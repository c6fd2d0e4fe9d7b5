"""Training: the shared loop, checkpoints and logs, and the two stages' steps. The only part of the package that
knows accelerate."""

from .checkpoints import CheckpointError
from .entry import main_ldm, main_vae
from .ldm_trainer import LDMTrainer, train_ldm
from .trainer import Trainer, TrainingError
from .vae_trainer import VAETrainer, train_vae

__all__ = [
    "CheckpointError",
    "LDMTrainer",
    "Trainer",
    "TrainingError",
    "VAETrainer",
    "main_ldm",
    "main_vae",
    "train_ldm",
    "train_vae",
]
