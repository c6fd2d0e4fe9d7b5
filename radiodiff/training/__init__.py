"""Training: the shared loop, checkpoints and logs, and the stages' steps (the VAE, the second stage, RadioUNet).
The only part of the package that knows accelerate."""

from .checkpoints import CheckpointError
from .entry import main_ldm, main_radiounet, main_vae
from .ldm_trainer import LDMTrainer, train_ldm
from .radiounet_trainer import RadioUNetTrainer, train_radiounet
from .trainer import Trainer, TrainingError
from .vae_trainer import VAETrainer, train_vae

__all__ = [
    "CheckpointError",
    "LDMTrainer",
    "RadioUNetTrainer",
    "Trainer",
    "TrainingError",
    "VAETrainer",
    "main_ldm",
    "main_radiounet",
    "main_vae",
    "train_ldm",
    "train_radiounet",
    "train_vae",
]
