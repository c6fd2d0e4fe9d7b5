"""RadioMapSeer (and the synthetic set, which shares its layout) as a torch dataset of named gain maps."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from .images import GrayscaleReader, MapShaper, drop_unreadable, open_image
from .splits import Protocol, Split, split_map_ids

# RadioMapSeer's own, and SionnaRT: ``radiodiff synth --engine sionna``'s ray-traced maps (radiodiff.data.raytracing)
Simulation = Literal["DPM", "IRT2", "IRT4", "carsDPM", "carsIRT2", "SionnaRT"]
SIMULATIONS: tuple[str, ...] = ("DPM", "IRT2", "IRT4", "carsDPM", "carsIRT2", "SionnaRT")
RADIOMAPSEER_SIZE = 256
_GAIN_NAME = re.compile(r"^(\d+)_(\d+)\.png$")


def _require_folder(folder: Path, what: str) -> None:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: folder not found; expected {what} there")


def _transmitters_by_map(gain_folder: Path) -> dict[int, list[int]]:
    """``{map id: [tx, ...]}`` from the ``{map}_{tx}.png`` names in one listing of the folder."""
    found: dict[int, list[int]] = {}
    with os.scandir(gain_folder) as entries:
        for entry in entries:
            match = _GAIN_NAME.match(entry.name)
            if match:
                found.setdefault(int(match[1]), []).append(int(match[2]))
    return {map_id: sorted(txs) for map_id, txs in sorted(found.items())}


class RadioMapSeerDataset(Dataset):
    """Gain maps of one split of a RadioMapSeer-layout folder.

    Args:
        root: the folder holding ``gain/<simulation>/``, ``png/buildings_complete/`` and ``png/antennas/``.
        split: ``train``, ``val`` or ``test``.
        simulation: which gain maps: ``DPM``, ``IRT2``, ``IRT4``, ``carsDPM``, ``carsIRT2``, or ``SionnaRT``.
        protocol: how maps are split (see :mod:`radiodiff.data.splits`).
        map_size: the side the maps are expected to have on disk (256 for RadioMapSeer).
        resolution: the side of the returned maps; ``None`` keeps ``map_size``.
        allow_resize: whether maps whose side differs from ``resolution`` may be resized; if not, such a map is
            an error that names the file.
        with_conditions: also return the ``buildings`` and ``transmitter`` rasters (in [0, 1]).
        on_corrupt: ``fail`` raises on an unreadable image when it is read; ``skip`` reads every image once now
            and leaves out the transmitters whose images cannot be read, with one warning that counts them.

    Items are dicts: ``gain_map`` float32 (1, H, W) in [-1, 1], ``name`` ``"{map}_{tx}"``, and with conditions
    ``buildings`` (1 = building) and ``transmitter`` (1 at the transmitter).
    """

    def __init__(
        self,
        root: str | Path,
        split: Split,
        *,
        simulation: Simulation = "DPM",
        protocol: Protocol = "leakfree",
        map_size: int = RADIOMAPSEER_SIZE,
        resolution: int | None = None,
        allow_resize: bool = False,
        with_conditions: bool = False,
        on_corrupt: Literal["fail", "skip"] = "fail",
    ) -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"{self.root}: RadioMapSeer root not found; expected a folder holding gain/{simulation}/, "
                "png/buildings_complete/ and png/antennas/"
            )
        if simulation not in SIMULATIONS:
            raise ValueError(f"simulation {simulation!r}: expected one of {', '.join(SIMULATIONS)}")
        self.gain_folder = self.root / "gain" / simulation
        self.buildings_folder = self.root / "png" / "buildings_complete"
        self.antennas_folder = self.root / "png" / "antennas"
        _require_folder(self.gain_folder, f"the {simulation} gain maps ({{map}}_{{tx}}.png)")
        if with_conditions:
            _require_folder(self.buildings_folder, "the building maps ({map}.png)")
            _require_folder(self.antennas_folder, "the transmitter images ({map}_{tx}.png)")
        self.shaper = MapShaper(size=resolution or map_size, allow_resize=allow_resize)
        self.with_conditions = with_conditions
        self._grayscale = GrayscaleReader()

        transmitters = _transmitters_by_map(self.gain_folder)
        if not transmitters:
            raise FileNotFoundError(f"{self.gain_folder}: no gain maps in it; expected {{map}}_{{tx}}.png files")
        map_ids = split_map_ids(protocol, split, list(transmitters))
        missing = [map_id for map_id in map_ids if map_id not in transmitters]
        if missing:
            raise FileNotFoundError(
                f"{self.gain_folder}: the {protocol} protocol's {split} split needs maps that are not there "
                f"({len(missing)} of {len(map_ids)}, e.g. {missing[0]}_0.png)"
            )
        self.samples = [(map_id, tx) for map_id in map_ids for tx in transmitters[map_id]]
        if on_corrupt == "skip":
            self.samples = drop_unreadable(self.samples, self._read_sample, f"{self.root} ({split})")
        elif on_corrupt != "fail":
            raise ValueError(f"on_corrupt {on_corrupt!r}: expected 'fail' or 'skip'")

    def __len__(self) -> int:
        return len(self.samples)

    def _read(self, path: Path) -> np.ndarray:
        return self._grayscale(open_image(path), path)

    def _read_sample(self, sample: tuple[int, int]) -> dict[str, torch.Tensor | str]:
        map_id, tx = sample
        name = f"{map_id}_{tx}"
        gain_path = self.gain_folder / f"{name}.png"
        item: dict[str, torch.Tensor | str] = {
            "gain_map": self.shaper.gain_map(self._read(gain_path), gain_path),
            "name": name,
        }
        if self.with_conditions:
            buildings_path = self.buildings_folder / f"{map_id}.png"
            item["buildings"] = self.shaper.buildings(self._read(buildings_path), buildings_path)
            antenna_path = self.antennas_folder / f"{name}.png"
            item["transmitter"] = self.shaper.transmitter(self._read(antenna_path), antenna_path)
        return item

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        return self._read_sample(self.samples[index])
