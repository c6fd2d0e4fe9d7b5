"""Sample sheets on the [0, 1] scale of the maps: the first stage's reconstructions and the second stage's
generated maps, each beside its ground truth and the absolute error, for a fixed validation batch."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

# perceptually uniform maps: gain reads monotonically as brightness, errors stand out on black
GAIN_CMAP = "viridis"
ERROR_CMAP = "magma"
BUILDINGS_CMAP = "gray_r"


def to_unit(maps: torch.Tensor) -> torch.Tensor:
    """Maps on [-1, 1] (the data's and the VAE's scale) -> [0, 1] on the CPU."""
    return ((maps.float().cpu() + 1) / 2).clamp(0, 1)


def _save_sheet(
    rows: list[tuple[str, torch.Tensor, str, float]],
    names: list[str],
    path: str | Path,
    title: str,
    transmitters: torch.Tensor | None = None,
) -> Path:
    """One row per ``(label, images on [0, 1], cmap, vmax)``; ``transmitters`` (B, 1, H, W) are marked on row 0."""
    columns = rows[0][1].shape[0]
    figure, axes = plt.subplots(
        len(rows), columns, figsize=(1.9 * columns + 1.2, 6.2 / 3 * len(rows)), squeeze=False, layout="constrained"
    )
    for row, (label, images, cmap, vmax) in enumerate(rows):
        for column in range(columns):
            axis = axes[row][column]
            shown = axis.imshow(images[column, 0].numpy(), cmap=cmap, vmin=0.0, vmax=vmax)
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(names[column], fontsize=8)
                if transmitters is not None:
                    # a one-pixel raster is invisible at this size: mark the transmitter instead
                    tx_row, tx_col = divmod(int(transmitters[column].flatten().argmax()), transmitters.shape[-1])
                    axis.plot(tx_col, tx_row, marker="x", color="red", markersize=7, markeredgewidth=2)
            if column == 0:
                axis.set_ylabel(label)
        figure.colorbar(shown, ax=list(axes[row]), fraction=0.02, pad=0.01)
    figure.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def _error_row(truth: torch.Tensor, prediction: torch.Tensor) -> tuple[str, torch.Tensor, str, float]:
    errors = (truth - prediction).abs()
    return ("|error|", errors, ERROR_CMAP, max(float(errors.max()), 1e-3))


def save_sample_sheet(
    gain_maps: torch.Tensor, reconstructions: torch.Tensor, names: list[str], path: str | Path, title: str
) -> Path:
    """The first stage's 3-row sheet: input, reconstruction, |error| (maps on [-1, 1])."""
    inputs, outputs = to_unit(gain_maps), to_unit(reconstructions)
    rows = [("input", inputs, GAIN_CMAP, 1.0), ("reconstruction", outputs, GAIN_CMAP, 1.0), _error_row(inputs, outputs)]
    return _save_sheet(rows, names, path, title)


def save_generation_sheet(
    buildings: torch.Tensor,
    transmitters: torch.Tensor,
    gain_maps: torch.Tensor,
    generated: torch.Tensor,
    names: list[str],
    path: str | Path,
    title: str,
) -> Path:
    """The second stage's 4-row sheet: buildings with the transmitter marked, ground truth, generated, |error|.

    ``buildings`` and ``transmitters`` on [0, 1], ``gain_maps`` on [-1, 1], ``generated`` on [0, 1] (the
    pipeline's output).
    """
    truth, prediction = to_unit(gain_maps), generated.float().cpu().clamp(0, 1)
    rows = [
        ("buildings, transmitter (x)", buildings.float().cpu(), BUILDINGS_CMAP, 1.0),
        ("ground truth", truth, GAIN_CMAP, 1.0),
        ("generated", prediction, GAIN_CMAP, 1.0),
        _error_row(truth, prediction),
    ]
    return _save_sheet(rows, names, path, title, transmitters=transmitters.float().cpu())
