"""The two stages' training objectives, one module each.

- :mod:`.vae_gan`: the first stage's VAE-GAN loss (latent-diffusion's ``LPIPSWithDiscriminator``): reconstruction,
  LPIPS, KL and the PatchGAN's adaptive-weighted adversarial term, and the discriminator's hinge or vanilla loss.
- :mod:`.diffusion`: the second stage's losses: RadioDiff's decoupled (C, eps) loss, flow matching's velocity MSE
  and direct regression's clean-latent MSE.
"""

from .diffusion import flow_matching_loss, latent_regression_loss, radiodiff_loss
from .vae_gan import (
    ADAPTIVE_WEIGHT_MAX,
    DISC_LOSSES,
    VAEGANLoss,
    build_perceptual_loss,
    frozen,
    hinge_d_loss,
    kl_to_standard_normal,
    vanilla_d_loss,
)

__all__ = [
    "ADAPTIVE_WEIGHT_MAX",
    "DISC_LOSSES",
    "VAEGANLoss",
    "build_perceptual_loss",
    "flow_matching_loss",
    "frozen",
    "hinge_d_loss",
    "kl_to_standard_normal",
    "latent_regression_loss",
    "radiodiff_loss",
    "vanilla_d_loss",
]
