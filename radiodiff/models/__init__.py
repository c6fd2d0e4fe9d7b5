"""The models: the VAE and the discriminator. Pure modules, no data and no training logic."""

from .discriminator import PatchGANDiscriminator
from .vae import RadioDiffVAE, RadioDiffVAEOutput, denormalize_latents, normalize_latents

__all__ = ["PatchGANDiscriminator", "RadioDiffVAE", "RadioDiffVAEOutput", "denormalize_latents", "normalize_latents"]
