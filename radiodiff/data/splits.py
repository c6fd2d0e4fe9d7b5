"""Which maps go to train, val and test: RadioMapSeer's published protocols and a leak-free one.

The original loaders (RadioUNet's and RadioDiff's) shuffle the indices 0..699 with ``np.random.seed(42)``, read
map ``index + 1`` (so ids 1..700; map 0 is never used) and take inclusive position ranges of that order:

- ``radiounet``: train 0..500 (501 maps), val 501..600 (100), test 601..699 (99); disjoint.
- ``radiodiff``: train 0..600 (601 maps), val 600..650 (51), test 600..699 (100). Position 600 (map 289) is in all
  three splits, and every val map is also a test map: the reported test numbers include one training map.
- ``leakfree`` (the default): the maps present, in the same seed-42 shuffle, cut 6/7 : 1/14 : 1/14 with no map in
  two splits (RadioMapSeer's maps 1..700 would give 600 : 50 : 50).
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np

Protocol = Literal["leakfree", "radiodiff", "radiounet"]
Split = Literal["train", "val", "test"]
SPLITS: tuple[Split, ...] = ("train", "val", "test")

# inclusive (first, last) positions in the seed-42 shuffle, as the original loaders slice it
_PUBLISHED_POSITIONS: dict[str, dict[str, tuple[int, int]]] = {
    "radiounet": {"train": (0, 500), "val": (501, 600), "test": (601, 699)},
    "radiodiff": {"train": (0, 600), "val": (600, 650), "test": (600, 699)},
}
_RADIOMAPSEER_MAPS = 700


def _seed42_shuffle(values: np.ndarray) -> np.ndarray:
    # the legacy global-state shuffle that ``np.random.seed(42); np.random.shuffle(...)`` performs
    shuffled = values.copy()
    np.random.RandomState(42).shuffle(shuffled)
    return shuffled


def published_map_ids(protocol: Protocol, split: Split) -> list[int]:
    """The RadioMapSeer map ids of ``split`` under the ``radiounet`` or ``radiodiff`` protocol, in loader order."""
    first, last = _PUBLISHED_POSITIONS[protocol][split]
    order = _seed42_shuffle(np.arange(_RADIOMAPSEER_MAPS, dtype=np.int16)) + 1
    return [int(map_id) for map_id in order[first : last + 1]]


def leak_free_map_ids(map_ids: Sequence[int], split: Split) -> list[int]:
    """``split``'s share of ``map_ids``: disjoint splits, none empty once there are three maps."""
    order = _seed42_shuffle(np.array(sorted(map_ids)))
    count = len(order)
    if count < 3:
        raise ValueError(f"a leak-free split needs at least 3 maps, got {count}")
    train_end = min(max(round(count * 6 / 7), 1), count - 2)
    val_end = min(max(round(count * 13 / 14), train_end + 1), count - 1)
    bounds = {"train": (0, train_end), "val": (train_end, val_end), "test": (val_end, count)}
    start, end = bounds[split]
    return [int(map_id) for map_id in order[start:end]]


def split_map_ids(protocol: Protocol, split: Split, available: Sequence[int]) -> list[int]:
    """The map ids of ``split`` under ``protocol``; ``available`` is what the dataset holds (for ``leakfree``)."""
    if split not in SPLITS:
        raise ValueError(f"split {split!r}: expected one of {', '.join(SPLITS)}")
    if protocol == "leakfree":
        return leak_free_map_ids(available, split)
    if protocol in _PUBLISHED_POSITIONS:
        return published_map_ids(protocol, split)
    raise ValueError(f"protocol {protocol!r}: expected one of leakfree, radiodiff, radiounet")
