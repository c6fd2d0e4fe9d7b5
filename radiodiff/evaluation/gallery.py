"""A reconstruction gallery: the best, median and worst maps by NMSE, each with its error map."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..file_writing import write_atomically
from .evaluate import VAEEvaluationResult
from .inference import inference
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


def save_vae_gallery(
    vae: torch.nn.Module,
    dataset: Dataset,
    result: VAEEvaluationResult,
    path: str | Path,
    *,
    count: int,
    device: torch.device | str,
) -> Path:
    """Draw ground truth, reconstruction (posterior mode) and absolute error on [0, 1] for the maps of
    :func:`gallery_indices`, one row per map, into the PNG ``path``."""
    rows = [(group, index) for group, indices in gallery_indices(result.per_image["nmse"], count).items()
            for index in indices]
    gain_maps = torch.stack([dataset[index]["gain_map"] for _, index in rows])
    with inference(vae, device):
        reconstructions = vae(gain_maps.to(device=device, dtype=vae.dtype)).sample
    truth, reconstruction = to_unit_range(gain_maps).cpu(), to_unit_range(reconstructions).cpu()
    titles = [f"{group} {result.names[index]} (NMSE {result.per_image['nmse'][index]:.2e})" for group, index in rows]
    return draw_gallery(path, titles, [
        Panel("ground truth", truth), Panel("reconstruction", reconstruction),
        Panel("|error|", (reconstruction - truth).abs(), colormap="magma", colorbar=True),
    ])


@dataclass
class Panel:
    """One column of a gallery: a (N, 1, H, W) batch on [0, 1] (fixed range unless ``colorbar``)."""

    title: str
    images: torch.Tensor
    colormap: str = "gray"
    colorbar: bool = False


def draw_gallery(path: str | Path, row_titles: list[str], panels: list[Panel]) -> Path:
    """One row per map, one column per panel; each row's first panel is titled ``row_titles[row]``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(row_titles), len(panels), figsize=(3 * len(panels), 3 * len(row_titles)),
                                squeeze=False, layout="constrained")
    for row, row_title in enumerate(row_titles):
        for column, panel in enumerate(panels):
            axis = axes[row, column]
            shown = axis.imshow(panel.images[row, 0].float().numpy(), cmap=panel.colormap, vmin=0.0,
                                vmax=None if panel.colorbar else 1.0)
            axis.set_title(row_title if column == 0 else panel.title, fontsize=8)
            axis.axis("off")
            if panel.colorbar:
                figure.colorbar(shown, ax=axis, fraction=0.046)
    image = io.BytesIO()
    figure.savefig(image, format="png", dpi=100)
    plt.close(figure)
    return write_atomically(path, image.getvalue())
