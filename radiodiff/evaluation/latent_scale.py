"""The latent scale: how large the VAE's latents are, and the two numbers that bring them to zero mean and unit
variance.

The diffusion stage works on ``(z - shift_factor) * scaling_factor`` (``radiodiff.models.vae.normalize_latents``,
diffusers' SD3/Flux convention), with ``shift_factor`` the mean and ``scaling_factor`` 1/std of the training
latents over all their elements. RadioDiff fixed ``scaling_factor`` 0.3 and no shift.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ..file_names import CONFIG_FILE
from ..file_writing import write_atomically
from .inference import batches, inference, model_input, posterior_latent, seeded_generator

RADIODIFF_SCALING_FACTOR = 0.3


@dataclass
class LatentStats:
    """The latents of a split: ``shift_factor`` (their mean) and ``scaling_factor`` (1/std) over all elements,
    and, for information, the per-channel mean and std."""

    mean: list[float]
    std: list[float]
    scaling_factor: float
    shift_factor: float
    num_maps: int


class _RunningMoments:
    """Per-channel sums in float64, so that millions of latent elements add up without drift."""

    def __init__(self, channels: int):
        self.count = 0
        self.total = torch.zeros(channels, dtype=torch.float64)
        self.total_squares = torch.zeros(channels, dtype=torch.float64)

    def add(self, latent: torch.Tensor) -> None:
        values = latent.detach().to("cpu", torch.float64).transpose(0, 1).flatten(1)  # (C, B*h*w)
        self.count += values.shape[1]
        self.total += values.sum(dim=1)
        self.total_squares += values.pow(2).sum(dim=1)

    def stats(self, num_maps: int) -> LatentStats:
        mean = self.total / self.count
        variance = (self.total_squares / self.count - mean.pow(2)).clamp_min(0.0)
        overall_mean = self.total.sum() / (self.count * len(mean))
        overall_variance = (self.total_squares.sum() / (self.count * len(mean)) - overall_mean.pow(2)).clamp_min(0.0)
        if overall_variance.item() == 0.0:
            raise ValueError("every latent element has the same value; the latent scale 1/std is undefined")
        return LatentStats(
            mean=mean.tolist(),
            std=variance.sqrt().tolist(),
            scaling_factor=float(overall_variance.rsqrt()),
            shift_factor=float(overall_mean),
            num_maps=num_maps,
        )


def latent_statistics(
    vae: torch.nn.Module,
    dataset: Dataset,
    *,
    batch_size: int,
    device: torch.device | str,
    sample_posterior: bool = True,
    num_workers: int = 0,
    seed: int = 0,
) -> LatentStats:
    """Moments of the latents of every map in ``dataset`` (population statistics over maps and pixels).

    Latents are posterior samples by default, as the diffusion stage's training latents are; the
    ``seed``-ed generator makes the measurement reproducible. ``sample_posterior=False`` uses the mode.
    """
    moments: _RunningMoments | None = None
    num_maps = 0
    generator = seeded_generator(device, seed) if sample_posterior else None
    with inference(vae, device):
        for batch in batches(dataset, batch_size=batch_size, num_workers=num_workers, description="latent scale"):
            posterior = vae.encode(model_input(batch, vae, device)).latent_dist
            latent = posterior_latent(posterior, sample_posterior, generator)
            moments = moments or _RunningMoments(latent.shape[1])
            moments.add(latent)
            num_maps += latent.shape[0]
    return moments.stats(num_maps)


def write_latent_scale(model_dir: str | Path, scaling_factor: float, shift_factor: float | None = None) -> Path:
    """Store ``scaling_factor`` and ``shift_factor`` (``None``: no shift) in the ``config.json`` of a saved VAE
    folder, and unset ``latents_mean``/``latents_std``: diffusers pipelines that read those would normalise a
    second time, per channel. The weights are left untouched; the file is replaced atomically.
    """
    config_path = Path(model_dir) / CONFIG_FILE
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path}: not found; expected a saved VAE folder")
    if not scaling_factor > 0:
        raise ValueError(f"scaling factor: expected a positive number, got {scaling_factor}")
    config = json.loads(config_path.read_text())
    config.update(
        scaling_factor=float(scaling_factor),
        shift_factor=None if shift_factor is None else float(shift_factor),
        latents_mean=None,
        latents_std=None,
    )
    return write_atomically(config_path, json.dumps(config, indent=2, sort_keys=True) + "\n")
