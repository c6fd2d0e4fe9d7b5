"""A reconstruction gallery: the best, median and worst maps by NMSE, each with its error map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .batches import inference
from .evaluate import EvaluationResult
from .metrics import to_unit_range


def gallery_indices(nmse: np.ndarray, count: int) -> dict[str, list[int]]:
    """Dataset positions of the ``count`` best, median and worst maps by NMSE (NaN NMSE maps left out)."""
    order = [int(i) for i in np.argsort(nmse, kind="stable") if np.isfinite(nmse[i])]
    count = min(count, len(order))
    middle = max(0, (len(order) - count) // 2)
    return {
        "best": order[:count],
        "median": order[middle : middle + count],
        "worst": order[len(order) - count :][::-1],
    }


def save_gallery(
    vae: torch.nn.Module,
    dataset: Dataset,
    result: EvaluationResult,
    path: str | Path,
    *,
    count: int,
    device: torch.device | str,
) -> Path:
    """Draw ground truth, reconstruction (posterior mode) and absolute error on [0, 1] for the maps of
    :func:`gallery_indices`, one row per map, into the PNG ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(group, index) for group, indices in gallery_indices(result.per_image["nmse"], count).items()
            for index in indices]
    gain_maps = torch.stack([dataset[index]["gain_map"] for _, index in rows])
    with inference(vae, device):
        reconstructions = vae(gain_maps.to(device=device, dtype=vae.dtype)).sample
    truth, reconstruction = to_unit_range(gain_maps).cpu(), to_unit_range(reconstructions).cpu()
    error = (reconstruction - truth).abs()

    figure, axes = plt.subplots(len(rows), 3, figsize=(9, 3 * len(rows)), squeeze=False)
    for row, (group, index) in enumerate(rows):
        nmse = result.per_image["nmse"][index]
        panels = [(truth, "ground truth", "gray"), (reconstruction, "reconstruction", "gray"), (error, "|error|", "magma")]
        for column, (images, title, colormap) in enumerate(panels):
            axis = axes[row, column]
            shown = axis.imshow(images[row, 0].numpy(), cmap=colormap, vmin=0.0, vmax=1.0 if column < 2 else None)
            axis.set_title(f"{group} {result.names[index]} (NMSE {nmse:.2e})" if column == 0 else title, fontsize=8)
            axis.axis("off")
            if column == 2:
                figure.colorbar(shown, ax=axis, fraction=0.046)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
