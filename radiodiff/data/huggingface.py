"""Gain maps from Hugging Face ``datasets``: a saved dataset, a local image folder, or a Hub id.

A dataset with its own splits (``train``, ``validation``, ``test``) is used as it is. A dataset with a single split
(as ``load_dataset`` makes of one folder of images) is cut leak-free like RadioMapSeer: by its ``map_id`` column
when it has one (the synthetic ``datasets`` output does), else by row, which is only leak-free if no two rows show
the same city.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from .images import GrayscaleReader, MapShaper, drop_unreadable, open_image
from .splits import Split, leak_free_map_ids

_SPLIT_NAMES: dict[str, tuple[str, ...]] = {
    "train": ("train",),
    "val": ("validation", "val", "valid", "dev"),
    "test": ("test",),
}
CONDITION_COLUMNS = ("buildings", "transmitter")


def _is_local(root: str) -> bool:
    return root.startswith((".", "/", "~")) or Path(root).expanduser().exists()


def load_source(root: str):
    """The ``datasets`` object behind ``root``: ``load_from_disk``, an ``imagefolder``, or the Hub."""
    import datasets

    path = Path(root).expanduser()
    if path.is_dir():
        saved = any((path / marker).is_file() for marker in ("dataset_dict.json", "state.json"))
        if saved:
            return datasets.load_from_disk(str(path))
        return datasets.load_dataset("imagefolder", data_dir=str(path))
    if _is_local(root):
        raise FileNotFoundError(
            f"{path}: not found; expected a dataset saved with save_to_disk, a folder of images, or a Hub id"
        )
    return datasets.load_dataset(root)


def _select_split(source, split: Split, root: str):
    """``split`` of ``source``: its own split of that name, or a leak-free cut of its only split."""
    import datasets

    if isinstance(source, datasets.DatasetDict) and len(source) > 1:
        for name in _SPLIT_NAMES[split]:
            if name in source:
                return source[name]
        raise ValueError(
            f"{root}: has splits {', '.join(source)} but none for {split!r} "
            f"(looked for {', '.join(_SPLIT_NAMES[split])})"
        )
    if isinstance(source, datasets.DatasetDict):
        (source,) = source.values()
    if "map_id" in source.column_names:
        map_ids = list(source["map_id"])
        wanted = set(leak_free_map_ids(sorted(set(map_ids)), split))
        rows = [row for row, map_id in enumerate(map_ids) if map_id in wanted]
    else:
        rows = sorted(leak_free_map_ids(range(len(source)), split))
    # in memory: selecting must not write index files into the user's dataset folder
    return source.select(rows, keep_in_memory=True)


class HuggingFaceMapDataset(Dataset):
    """Gain maps from one split of a Hugging Face dataset, normalised like RadioMapSeer's.

    Args:
        root: a folder saved with ``save_to_disk``, a folder of images, or a Hub dataset id.
        split: ``train``, ``val`` or ``test``.
        image_column: the column holding the gain maps.
        resolution: the side of the returned maps; ``None`` takes the first map's side.
        allow_resize: whether maps of another side may be resized; if not, such a map is an error.
        with_conditions: also return ``buildings`` and ``transmitter`` from the columns of those names.
        on_corrupt: ``fail`` raises on an unreadable image when it is read; ``skip`` decodes every image once now
            and leaves out the unreadable rows, with one warning that counts them.
    """

    def __init__(
        self,
        root: str,
        split: Split,
        *,
        image_column: str = "image",
        resolution: int | None = None,
        allow_resize: bool = False,
        with_conditions: bool = False,
        on_corrupt: Literal["fail", "skip"] = "fail",
    ) -> None:
        import datasets

        self.root = root
        rows = _select_split(load_source(root), split, root)
        needed = (image_column, *CONDITION_COLUMNS) if with_conditions else (image_column,)
        absent = [column for column in needed if column not in rows.column_names]
        if absent:
            purpose = "conditions (with_conditions=True)" if image_column not in absent else "gain maps (image_column)"
            raise ValueError(
                f"{root}: no column {absent[0]!r} for the {purpose}; the dataset has {', '.join(rows.column_names)}"
            )
        self.has_names = "name" in rows.column_names
        rows = rows.select_columns([*needed, "name"] if self.has_names else list(needed))
        # undecoded, so that an unreadable image is reported with its row and file instead of deep in datasets
        for column in needed:
            rows = rows.cast_column(column, datasets.Image(decode=False))
        self.rows = rows
        self.image_columns = needed
        self.image_column = image_column
        self.with_conditions = with_conditions
        self._grayscale = GrayscaleReader()
        self.indices = list(range(len(rows)))
        if not self.indices:
            raise ValueError(f"{root}: the {split} split is empty")
        if on_corrupt == "skip":
            self.indices = drop_unreadable(self.indices, self._decode_row, f"{root} ({split})")
            if not self.indices:
                raise ValueError(f"{root}: every image of the {split} split is unreadable")
        elif on_corrupt != "fail":
            raise ValueError(f"on_corrupt {on_corrupt!r}: expected 'fail' or 'skip'")
        size = resolution or self._read(self.indices[0], image_column)[0].shape[-1]
        self.shaper = MapShaper(size=size, allow_resize=allow_resize)

    def __len__(self) -> int:
        return len(self.indices)

    def _read(self, index: int, column: str) -> tuple[np.ndarray, str]:
        """Row ``index``'s image in ``column`` as 8-bit grayscale, and how errors name it."""
        cell = self.rows[index][column]
        source = f"{self.root} row {index} column {column!r}" + (f" ({cell['path']})" if cell.get("path") else "")
        if cell.get("bytes") is None and not cell.get("path"):
            raise ValueError(f"{source}: no image")
        return self._grayscale(open_image(cell.get("path") or source, cell.get("bytes")), source), source

    def _decode_row(self, index: int) -> None:
        for column in self.image_columns:
            self._read(index, column)

    def _read_row(self, index: int) -> dict[str, torch.Tensor | str]:
        row_name = self.rows[index]["name"] if self.has_names else str(index)
        item: dict[str, torch.Tensor | str] = {
            "gain_map": self.shaper.gain_map(*self._read(index, self.image_column)),
            "name": str(row_name),
        }
        if self.with_conditions:
            item["buildings"] = self.shaper.buildings(*self._read(index, "buildings"))
            item["transmitter"] = self.shaper.transmitter(*self._read(index, "transmitter"))
        return item

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        return self._read_row(self.indices[index])
