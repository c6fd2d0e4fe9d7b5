"""Evaluation of a trained VAE (reconstruction metrics, the latent scale, a gallery), of a second-stage
pipeline (generated maps beside the VAE ceiling and a physics baseline), and of several models side by side
(``compare``: one table on the same maps).

Plain torch device handling, no accelerate and no training code: the trainer calls :func:`evaluate_vae` and
:func:`write_vae_metrics` at the end of a run, the ``radiodiff evaluate`` command calls them on any split.
"""

from .inference import default_device, default_variant, load_vae, spread_subset
from .evaluate import VAEEvaluationResult, evaluate_vae, train_subset_summary, write_vae_metrics
from .baseline import log_distance_map
from .gallery import gallery_indices, save_vae_gallery
from .latent_scale import RADIODIFF_SCALING_FACTOR, LatentStats, latent_statistics, write_latent_scale
from .metrics import DATA_RANGE, normalized_mse, reconstruction_metrics, summarize, to_unit_range
from .pipeline import (
    PipelineEvaluationResult,
    evaluate_pipeline,
    format_pipeline_summary,
    save_pipeline_gallery,
    write_pipeline_metrics,
)
from .regions import building_edges, map_regions

__all__ = [
    "DATA_RANGE",
    "LatentStats",
    "PipelineEvaluationResult",
    "RADIODIFF_SCALING_FACTOR",
    "VAEEvaluationResult",
    "building_edges",
    "default_device",
    "default_variant",
    "evaluate_pipeline",
    "evaluate_vae",
    "format_pipeline_summary",
    "gallery_indices",
    "latent_statistics",
    "load_vae",
    "log_distance_map",
    "map_regions",
    "normalized_mse",
    "reconstruction_metrics",
    "save_pipeline_gallery",
    "save_vae_gallery",
    "spread_subset",
    "summarize",
    "to_unit_range",
    "train_subset_summary",
    "write_latent_scale",
    "write_pipeline_metrics",
    "write_vae_metrics",
]
