"""Evaluation of a trained VAE: reconstruction metrics, the latent scale, and a reconstruction gallery.

Plain torch device handling, no accelerate and no training code: the trainer calls :func:`evaluate_vae` and
:func:`write_metrics` at the end of a run, the ``radiodiff evaluate`` command calls them on any split.
"""

from .batches import default_device, default_variant, load_vae, spread_subset
from .evaluate import EvaluationResult, evaluate_vae, train_subset_summary, write_metrics
from .gallery import gallery_indices, save_gallery
from .latent_scale import RADIODIFF_SCALING_FACTOR, LatentStats, latent_statistics, write_latent_scale
from .metrics import DATA_RANGE, reconstruction_metrics, summarize, to_unit_range

__all__ = [
    "DATA_RANGE",
    "EvaluationResult",
    "LatentStats",
    "RADIODIFF_SCALING_FACTOR",
    "default_device",
    "evaluate_vae",
    "gallery_indices",
    "latent_statistics",
    "default_variant",
    "load_vae",
    "reconstruction_metrics",
    "save_gallery",
    "spread_subset",
    "summarize",
    "to_unit_range",
    "train_subset_summary",
    "write_latent_scale",
    "write_metrics",
]
