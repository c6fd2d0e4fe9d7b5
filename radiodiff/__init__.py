"""RadioDiff VAE: the first stage of RadioDiff (radio-map latent diffusion) as a Hugging Face-native package."""

from .losses import VAEGANLoss
from .models import PatchGANDiscriminator, RadioDiffVAE

__version__ = "0.1.0"

__all__ = ["PatchGANDiscriminator", "RadioDiffVAE", "VAEGANLoss", "__version__"]
