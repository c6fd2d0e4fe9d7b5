"""Where on a map an error is made: line of sight, shadow and building edges, from buildings and transmitter.

A claim of sharper shadows shows in the shadowed and edge pixels, which a whole-map NMSE dilutes among the many
smooth line-of-sight pixels. Line of sight is the synthetic generator's own
(:func:`~radiodiff.data.propagation.visible_pixels`: rays from the transmitter, a pixel lit if its ray meets no
building first), so on synthetic maps the regions are exactly the ones the maps were made with.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from ..data.propagation import visible_pixels
from .baseline import transmitter_positions

REGION_NAMES = ("los", "shadow", "edge")
# 8-connected: a pixel diagonally beside a corner is at the boundary too
_NEIGHBOURS = np.ones((3, 3), dtype=bool)


def building_edges(buildings: np.ndarray) -> np.ndarray:
    """Pixels within 1 px (8-neighbourhood) of a building boundary, on either side of it: building pixels with a
    free neighbour and free pixels with a building neighbour. The map's border is no boundary."""
    grown = ndimage.binary_dilation(buildings, _NEIGHBOURS)
    shrunk = ndimage.binary_erosion(buildings, _NEIGHBOURS, border_value=1)
    return grown & ~shrunk


def map_regions(buildings: torch.Tensor, transmitter: torch.Tensor) -> dict[str, torch.Tensor]:
    """Bool (B, 1, H, W) masks of a batch: ``los`` (free pixels that see the transmitter), ``shadow`` (free
    pixels that do not) and ``edge`` (:func:`building_edges`, which overlaps both and the buildings).

    Args:
        buildings: (B, 1, H, W), above 0.5 = building.
        transmitter: (B, 1, H, W) with one lit pixel per map.
    """
    masks = {name: [] for name in REGION_NAMES}
    for position, city in zip(transmitter_positions(transmitter), buildings[:, 0].cpu().numpy() > 0.5):
        lit = visible_pixels(city, position)
        masks["los"].append(lit & ~city)
        masks["shadow"].append(~lit & ~city)
        masks["edge"].append(building_edges(city))
    return {name: torch.from_numpy(np.stack(stack)[:, None]) for name, stack in masks.items()}
