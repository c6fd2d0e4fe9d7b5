"""Sample sheets: inputs, reconstructions and absolute errors of a fixed validation batch."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

# perceptually uniform maps: gain reads monotonically as brightness, errors stand out on black
GAIN_CMAP = "viridis"
ERROR_CMAP = "magma"


def save_sample_sheet(
    gain_maps: torch.Tensor, reconstructions: torch.Tensor, names: list[str], path: str | Path, title: str
) -> Path:
    """Write a 3-row sheet (input, reconstruction, |error|) on the [0, 1] scale of the maps."""
    inputs = ((gain_maps.float().cpu() + 1) / 2).clamp(0, 1)
    outputs = ((reconstructions.float().cpu() + 1) / 2).clamp(0, 1)
    errors = (inputs - outputs).abs()
    columns = inputs.shape[0]
    error_max = max(float(errors.max()), 1e-3)
    figure, axes = plt.subplots(3, columns, figsize=(1.9 * columns + 1.2, 6.2), squeeze=False, layout="constrained")
    rows = [("input", inputs, GAIN_CMAP, 1.0), ("reconstruction", outputs, GAIN_CMAP, 1.0), ("|error|", errors, ERROR_CMAP, error_max)]
    for row, (label, images, cmap, vmax) in enumerate(rows):
        for column in range(columns):
            axis = axes[row][column]
            shown = axis.imshow(images[column, 0].numpy(), cmap=cmap, vmin=0.0, vmax=vmax)
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(names[column], fontsize=8)
            if column == 0:
                axis.set_ylabel(label)
        figure.colorbar(shown, ax=list(axes[row]), fraction=0.02, pad=0.01)
    figure.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path
