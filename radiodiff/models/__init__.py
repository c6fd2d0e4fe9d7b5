"""The models: the VAE, the discriminator, the condition encoder and the denoiser presets. Pure modules, no data
and no training logic."""

from .condition_encoder import RadioMapConditionEncoder, transmitter_log_distance
from .denoiser import PRESETS, ConditionedDenoiser, build_condition_encoder, build_denoiser
from .discriminator import PatchGANDiscriminator
from .radiounet import RadioUNetDenoiser, RadioUNetModel, RadioUNetOutput
from .vae import RadioDiffVAE, RadioDiffVAEOutput, downsampling_factor, normalize_latents

__all__ = [
    "PRESETS",
    "ConditionedDenoiser",
    "PatchGANDiscriminator",
    "RadioDiffVAE",
    "RadioDiffVAEOutput",
    "RadioMapConditionEncoder",
    "RadioUNetDenoiser",
    "RadioUNetModel",
    "RadioUNetOutput",
    "build_condition_encoder",
    "build_denoiser",
    "downsampling_factor",
    "normalize_latents",
    "transmitter_log_distance",
]
