"""A physics baseline with no learning: log-distance path gain from the transmitter, buildings zeroed.

It answers "what does a model add over free-space propagation?". The constants are the synthetic generator's
(:mod:`radiodiff.data.propagation`): the gain at 1 m is RadioMapSeer's ceiling, it falls by ``10 n log10(d)``
with n = 2 (free space), and RadioMapSeer's encoding maps -147 dB..-47.84 dB onto [0, 1], buildings 0. No shadowing, no
diffraction: everything the synthetic maps (or the simulator) add on top is what a model must learn.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data.city import meters_per_pixel
from ..data.propagation import GAIN_CEILING_DB, GAIN_FLOOR_DB, PropagationModel, distance_loss_db


def transmitter_positions(transmitter: torch.Tensor) -> list[tuple[int, int]]:
    """(row, col) of the lit pixel of each (1, H, W) map of a (B, 1, H, W) batch; exactly one must be lit."""
    positions = []
    for index, one_map in enumerate(transmitter[:, 0]):
        lit = torch.nonzero(one_map)
        if len(lit) != 1:
            raise ValueError(f"transmitter: map {index} has {len(lit)} lit pixels; expected exactly one")
        positions.append((int(lit[0, 0]), int(lit[0, 1])))
    return positions


def log_distance_map(
    buildings: torch.Tensor, transmitter: torch.Tensor, model: PropagationModel = PropagationModel()
) -> torch.Tensor:
    """The baseline's radio maps, float32 (B, 1, H, W) on [0, 1] (the scale of ``to_unit_range`` maps).

    Args:
        buildings: (B, 1, H, W), 1 (or anything above 0.5) = building.
        transmitter: (B, 1, H, W) with one lit pixel per map.
        model: the propagation constants; only ``exponent`` is used.

    The map is ``256 m`` across whatever its pixel count, like the synthetic cities and RadioMapSeer's.
    """
    if buildings.shape != transmitter.shape or buildings.dim() != 4 or buildings.shape[1] != 1:
        raise ValueError(
            f"expected buildings and transmitter of one shape (B, 1, H, W), got {tuple(buildings.shape)} and "
            f"{tuple(transmitter.shape)}"
        )
    height, width = buildings.shape[-2:]
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    pixel_m = meters_per_pixel(max(height, width))
    maps = []
    for (row, col), city in zip(transmitter_positions(transmitter), buildings[:, 0].cpu().numpy()):
        distance_m = np.hypot(rows - row, cols - col) * pixel_m
        gain_db = GAIN_CEILING_DB - distance_loss_db(distance_m, model)
        unit = np.clip((gain_db - GAIN_FLOOR_DB) / (GAIN_CEILING_DB - GAIN_FLOOR_DB), 0.0, 1.0)
        maps.append(np.where(city > 0.5, 0.0, unit))
    return torch.from_numpy(np.stack(maps)[:, None].astype(np.float32))
