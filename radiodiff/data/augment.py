"""Training-set augmentation by the 8 symmetries of the square.

A radio map stays a radio map under a flip or a right-angle rotation, as long as its buildings and its transmitter
turn with it. :class:`DihedralAugmented` presents a dataset 8 times over, item ``i`` being map ``i % n`` under
symmetry ``i // n``: which symmetry a map gets is a function of the index alone, so the sampler's shuffle (and its
checkpointed position) decides everything and a resumed run sees exactly the maps an uninterrupted one would.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset

DIHEDRAL_ORDER = 8
# the rasters that live on the map's grid; ``name`` and anything else pass through unchanged
SPATIAL_KEYS = ("gain_map", "buildings", "transmitter")


def dihedral_transform(raster: torch.Tensor, symmetry: int) -> torch.Tensor:
    """``raster`` (..., H, W) under symmetry ``symmetry`` in 0..7: ``symmetry % 4`` quarter turns, after a
    left-right mirror when ``symmetry >= 4``. 0 is the identity."""
    if not 0 <= symmetry < DIHEDRAL_ORDER:
        raise ValueError(f"symmetry {symmetry}: expected 0..{DIHEDRAL_ORDER - 1}")
    if symmetry >= 4:
        raster = raster.flip(-1)
    return torch.rot90(raster, symmetry % 4, dims=(-2, -1))


class DihedralAugmented(Dataset):
    """``dataset`` 8 times: item ``i`` is item ``i % len(dataset)`` under :func:`dihedral_transform` ``i // len``.

    The first ``len(dataset)`` items are the maps as they are (``unaugmented`` holds the wrapped dataset).
    """

    def __init__(self, dataset: Dataset) -> None:
        self.unaugmented = dataset

    def __len__(self) -> int:
        return DIHEDRAL_ORDER * len(self.unaugmented)

    def __getitem__(self, index: int) -> dict[str, Any]:
        symmetry, map_index = divmod(index, len(self.unaugmented))
        item = dict(self.unaugmented[map_index])
        for key in SPATIAL_KEYS:
            if key in item:
                height, width = item[key].shape[-2:]
                if height != width:
                    raise ValueError(
                        f"data.augment: dihedral needs square maps, but {item.get('name', map_index)!r} "
                        f"is {height}x{width}"
                    )
                item[key] = dihedral_transform(item[key], symmetry)
        return item


def unaugmented(dataset: Dataset) -> Dataset:
    """The maps of ``dataset`` each once, as they are: the wrapped dataset of an augmented one."""
    return dataset.unaugmented if isinstance(dataset, DihedralAugmented) else dataset
