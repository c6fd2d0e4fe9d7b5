"""Reconstruction metrics with RadioDiff's definitions, on the [0, 1] scale of the maps.

Every metric is computed per map; :func:`summarize` turns a column of per-map values into the mean, the
standard deviation and a 95% interval of the mean.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.stats
import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

METRIC_NAMES = ("nmse", "rmse", "ssim", "psnr")

# Maps live in [0, 1] once un-normalised. Fixing the range (instead of letting torchmetrics infer it from each
# batch, as the original did) makes PSNR and SSIM comparable across maps and runs.
DATA_RANGE = 1.0


def to_unit_range(gain_map: torch.Tensor) -> torch.Tensor:
    """A map in [-1, 1] (the model's scale) on [0, 1]; reconstructions are clamped first, as RadioDiff does."""
    return ((gain_map.float().clamp(-1.0, 1.0) + 1.0) / 2.0).clamp(0.0, 1.0)


def reconstruction_metrics(prediction: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-map NMSE, RMSE, SSIM and PSNR of ``prediction`` against ``target``, both (B, C, H, W) in [0, 1].

    NMSE = MSE(prediction, target) / MSE(target, 0); RMSE = sqrt(MSE); PSNR = 10 log10(1 / MSE), infinite
    for a perfect reconstruction; NMSE of an all-zero target is NaN (there is no signal to normalise by).
    """
    if prediction.shape != target.shape or prediction.dim() != 4:
        raise ValueError(
            f"expected prediction and target of one shape (B, C, H, W), got {tuple(prediction.shape)} and "
            f"{tuple(target.shape)}"
        )
    prediction, target = prediction.float(), target.float()
    pixels = (1, 2, 3)
    mse = (prediction - target).pow(2).mean(dim=pixels)
    return {
        "nmse": normalized_mse(prediction, target),
        "rmse": mse.sqrt(),
        "ssim": structural_similarity_index_measure(prediction, target, data_range=DATA_RANGE, reduction="none"),
        "psnr": peak_signal_noise_ratio(prediction, target, data_range=DATA_RANGE, reduction="none", dim=pixels),
    }


def normalized_mse(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-map NMSE = sum of squared errors / sum of squared target values, over the pixels of ``mask`` (bool,
    the shape of ``target``; all pixels without one). Both (B, C, H, W) on [0, 1]. A map whose target is zero on
    every counted pixel, or whose mask is empty, has NaN: there is no signal to normalise by.
    """
    prediction, target = prediction.float(), target.float()
    weight = torch.ones_like(target) if mask is None else mask.to(target.dtype)
    pixels = (1, 2, 3)
    squared_error = ((prediction - target).pow(2) * weight).sum(dim=pixels)
    signal_energy = (target.pow(2) * weight).sum(dim=pixels)
    return torch.where(signal_energy > 0, squared_error / signal_energy, torch.full_like(signal_energy, math.nan))


def summarize(values: np.ndarray) -> dict[str, float | list[float] | None]:
    """Mean, sample standard deviation and Student-t 95% interval of the mean of the finite ``values``.

    Non-finite values (the infinite PSNR of a perfect map) are left out; the caller reports how many. Fields
    that the remaining values cannot define (no value; an interval from one value) are ``None``.
    """
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    count = finite.size
    if count == 0:
        return {"mean": None, "std": None, "ci95": None}
    mean = float(finite.mean())
    if count == 1:
        return {"mean": mean, "std": 0.0, "ci95": None}
    std = float(finite.std(ddof=1))
    half_width = float(scipy.stats.t.ppf(0.975, df=count - 1)) * std / math.sqrt(count)
    return {"mean": mean, "std": std, "ci95": [mean - half_width, mean + half_width]}
