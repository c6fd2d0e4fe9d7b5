"""The models: the VAE and the discriminator. Pure modules, no data and no training logic."""

from .discriminator import PatchGANDiscriminator
from .vae import RadioDiffVAE, RadioDiffVAEOutput, denormalize_latents, downsampling_factor, normalize_latents

__all__ = ["PatchGANDiscriminator", "RadioDiffVAE", "RadioDiffVAEOutput", "denormalize_latents", "downsampling_factor", "normalize_latents"]
