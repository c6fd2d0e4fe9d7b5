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
    signal_power = target.pow(2).mean(dim=pixels)
    nmse = torch.where(signal_power > 0, mse / signal_power, torch.full_like(mse, math.nan))
    return {
        "nmse": nmse,
        "rmse": mse.sqrt(),
        "ssim": structural_similarity_index_measure(prediction, target, data_range=DATA_RANGE, reduction="none"),
        "psnr": peak_signal_noise_ratio(prediction, target, data_range=DATA_RANGE, reduction="none", dim=pixels),
    }


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
