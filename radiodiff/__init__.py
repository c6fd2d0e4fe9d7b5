"""RadioDiff (radio-map latent diffusion) as a Hugging Face-native package: the VAE and the diffusion stage."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# the models and the loss import torch and diffusers (seconds); they load on first use so that pure readers
# such as `radiodiff report` start fast; every class a pipeline folder ships the code of is here, since
# RadioDiffPipeline.load_config finds the package's own class for it by name
_LAZY_EXPORTS = {
    "PatchGANDiscriminator": ".models",
    "RadioDiffPipeline": ".pipelines",
    "RadioDiffScheduler": ".schedulers",
    "RadioDiffVAE": ".models",
    "RadioMapConditionEncoder": ".models",
    "RadioUNetDenoiser": ".models",
    "RadioUNetModel": ".models",
    "RadioUNetPipeline": ".pipelines",
    "RegressionScheduler": ".schedulers",
    "VAEGANLoss": ".losses",
}

__all__ = [
    "PatchGANDiscriminator",
    "RadioDiffPipeline",
    "RadioDiffScheduler",
    "RadioDiffVAE",
    "RadioMapConditionEncoder",
    "RadioUNetDenoiser",
    "RadioUNetModel",
    "RadioUNetPipeline",
    "RegressionScheduler",
    "VAEGANLoss",
    "__version__",
]

if TYPE_CHECKING:
    from .losses import VAEGANLoss
    from .models import PatchGANDiscriminator, RadioDiffVAE, RadioMapConditionEncoder, RadioUNetDenoiser, RadioUNetModel
    from .pipelines import RadioDiffPipeline, RadioUNetPipeline
    from .schedulers import RadioDiffScheduler, RegressionScheduler


def __getattr__(name: str) -> Any:
    if name not in _LAZY_EXPORTS:
        raise AttributeError(f"module 'radiodiff' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value
