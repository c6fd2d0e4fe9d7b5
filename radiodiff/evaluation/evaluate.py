"""The evaluation pass: reconstruct every map of a split, measure it, and write ``metrics.json`` + CSV."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..file_names import METRICS_FILE, PER_IMAGE_CSV
from ..file_writing import write_atomically
from ..losses import kl_to_standard_normal
from .inference import batches, inference, model_input, posterior_latent, seeded_generator
from .metrics import METRIC_NAMES, reconstruction_metrics, summarize, to_unit_range


@dataclass
class VAEEvaluationResult:
    """Per-map metrics of one split, in dataset order, and what the latent costs.

    Args:
        names: the map names (``"12_3"``), one per map.
        per_image: ``{"nmse", "rmse", "ssim", "psnr"}`` -> one value per map.
        input_shape: (C, H, W) of a map.
        latent_shape: (C, h, w) of its latent.
        kl_per_element: mean over maps of KL(q(z|x) || N(0, I)) / latent elements, in nats.
        split: the split evaluated.
        variant: the weights evaluated (``"ema"``), ``None`` for the plain weights.
    """

    names: list[str]
    per_image: dict[str, np.ndarray]
    input_shape: tuple[int, int, int]
    latent_shape: tuple[int, int, int]
    kl_per_element: float
    split: str = "val"
    variant: str | None = None

    @property
    def num_maps(self) -> int:
        return len(self.names)

    @property
    def compression_factor(self) -> float:
        """Input elements / latent elements (both counted as numbers, whatever their precision)."""
        return math.prod(self.input_shape) / math.prod(self.latent_shape)

    def non_finite_counts(self) -> dict[str, int]:
        return {name: int((~np.isfinite(values)).sum()) for name, values in self.per_image.items()}

    def summary(self) -> dict[str, Any]:
        """The content of ``metrics.json``."""
        return {
            "split": self.split,
            "variant": self.variant,
            "num_maps": self.num_maps,
            "metrics": {name: summarize(self.per_image[name]) for name in METRIC_NAMES},
            "non_finite": self.non_finite_counts(),
            "latent": {
                "shape": list(self.latent_shape),
                "compression_factor": round(self.compression_factor, 4),
                "kl_per_element": self.kl_per_element,
            },
        }


def evaluate_vae(
    vae: torch.nn.Module,
    dataset: Dataset,
    *,
    batch_size: int,
    device: torch.device | str,
    sample_posterior: bool = False,
    num_workers: int = 0,
    split: str = "val",
    variant: str | None = None,
    seed: int = 0,
) -> VAEEvaluationResult:
    """Reconstruct every gain map of ``dataset`` and measure it on the [0, 1] scale.

    ``dataset`` yields dicts with ``"gain_map"`` (1, H, W) in [-1, 1] and ``"name"``. Reconstructions decode
    the posterior mode (deterministic) unless ``sample_posterior``, which samples with a ``seed``-ed generator.
    """
    columns: dict[str, list[np.ndarray]] = {name: [] for name in METRIC_NAMES}
    names: list[str] = []
    kl_per_map: list[np.ndarray] = []
    generator = seeded_generator(device, seed) if sample_posterior else None
    with inference(vae, device):
        for batch in batches(dataset, batch_size=batch_size, num_workers=num_workers, description=f"evaluate {split}"):
            gain_map = model_input(batch, vae, device)
            posterior = vae.encode(gain_map).latent_dist
            latent = posterior_latent(posterior, sample_posterior, generator)
            reconstruction = vae.decode(latent).sample
            metrics = reconstruction_metrics(to_unit_range(reconstruction), to_unit_range(gain_map))
            for name, values in metrics.items():
                columns[name].append(values.cpu().numpy())
            kl_per_map.append((kl_to_standard_normal(posterior) / latent[0].numel()).cpu().numpy())
            names.extend(batch["name"])
    return VAEEvaluationResult(
        names=names,
        per_image={name: np.concatenate(values).astype(np.float64) for name, values in columns.items()},
        input_shape=tuple(gain_map.shape[1:]),
        latent_shape=tuple(latent.shape[1:]),
        kl_per_element=float(np.concatenate(kl_per_map).mean()),
        split=split,
        variant=variant,
    )


def train_subset_summary(validation: VAEEvaluationResult, train_subset: VAEEvaluationResult) -> dict[str, Any]:
    """The ``train_subset`` block of ``metrics.json``: the same weights on training maps, and the gap to
    validation (training minus validation mean; a PSNR far above validation means memorised training maps)."""
    metrics = {name: summarize(train_subset.per_image[name]) for name in METRIC_NAMES}
    validation_metrics = validation.summary()["metrics"]
    gap = {
        name: None if None in (stats["mean"], validation_metrics[name]["mean"])
        else stats["mean"] - validation_metrics[name]["mean"]
        for name, stats in metrics.items()
    }
    return {"split": train_subset.split, "num_maps": train_subset.num_maps, "metrics": metrics, "gap": gap}


def metrics_paths(output_dir_or_file: str | Path) -> tuple[Path, Path]:
    """``(metrics.json, per_image.csv)`` for an output folder, or for a ``.json`` file and the CSV beside it."""
    target = Path(output_dir_or_file)
    json_path = target if target.suffix == ".json" else target / METRICS_FILE
    return json_path, json_path.parent / PER_IMAGE_CSV


def write_vae_metrics(
    result: VAEEvaluationResult, output_dir_or_file: str | Path, train_subset: VAEEvaluationResult | None = None
) -> Path:
    """Write ``metrics.json`` (summary; strict JSON, no NaN or Infinity) and ``per_image.csv`` beside it.

    With ``train_subset`` (the same weights on training maps) the JSON also holds its ``train_subset`` block (see
    :func:`train_subset_summary`); the CSV keeps ``result``'s maps only. Returns the path of ``metrics.json``.
    The CSV keeps every value, ``inf`` for the PSNR of a perfect map.
    """
    summary = result.summary()
    if train_subset is not None:
        summary["train_subset"] = train_subset_summary(result, train_subset)
    return write_summary_and_table(summary, result.names, result.per_image, output_dir_or_file)


def write_summary_and_table(
    summary: dict[str, Any], names: list[str], columns: dict[str, np.ndarray], output_dir_or_file: str | Path
) -> Path:
    """``summary`` as strict JSON (no NaN or Infinity) and the per-map ``columns`` as ``per_image.csv`` beside it,
    each written atomically; returns the JSON's path. The CSV keeps every value, ``inf`` included."""
    json_path, csv_path = metrics_paths(output_dir_or_file)
    write_atomically(json_path, json.dumps(summary, indent=2, allow_nan=False) + "\n")
    rows = io.StringIO(newline="")
    writer = csv.writer(rows)
    writer.writerow(("name", *columns))
    for index, name in enumerate(names):
        writer.writerow((name, *(repr(float(values[index])) for values in columns.values())))
    write_atomically(csv_path, rows.getvalue())
    return json_path
