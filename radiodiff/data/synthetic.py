"""The built-in synthetic RadioMapSeer: random cities, transmitters in their streets, dominant-path-like gain maps.

``synthesize`` writes them in RadioMapSeer's own layout (so that :class:`~radiodiff.data.RadioMapSeerDataset`
reads synthetic and real data alike) or as a saved Hugging Face ``datasets`` dataset::

    gain/DPM/{map}_{tx}.png            gain, RadioMapSeer's 8-bit encoding (see ``propagation.encode_gain``)
    png/buildings_complete/{map}.png   255 = building, 0 = free space
    png/antennas/{map}_{tx}.png        255 at the transmitter's pixel, 0 elsewhere
    antenna/{map}.json                 [[x, y], ...]: each transmitter's column and row

Every map draws from its own random stream ``(seed, map id)``, so the output is the same for a seed whatever the
number of worker processes.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..config import SyntheticConfig
from .city import place_transmitters, random_city
from .propagation import encode_gain, path_gain_db, prepare_city

# bump when the generator's output changes, so that caches made by an older one are not reused
GENERATOR_VERSION = 1

OutputFormat = Literal["radiomapseer", "datasets"]


@dataclass
class SyntheticMap:
    """One city and its transmitters' gain maps."""

    map_id: int
    buildings: np.ndarray  # (H, W) bool, True = building
    transmitters: np.ndarray  # (T, 2) int, (row, col)
    gain_maps: np.ndarray  # (T, H, W) uint8, RadioMapSeer's encoding


def generate_map(seed: int, map_id: int, size: int, tx_per_map: int) -> SyntheticMap:
    """City ``map_id`` of the synthetic set ``seed``: the same arrays on every call and in every process."""
    rng = np.random.default_rng([seed, map_id])
    buildings = random_city(rng, size)
    transmitters = place_transmitters(rng, buildings, tx_per_map)
    prepared = prepare_city(buildings)
    gain_maps = np.stack([encode_gain(path_gain_db(prepared, (int(row), int(col)))) for row, col in transmitters])
    return SyntheticMap(map_id=map_id, buildings=buildings, transmitters=transmitters, gain_maps=gain_maps)


def building_image(city: SyntheticMap) -> np.ndarray:
    return np.where(city.buildings, 255, 0).astype(np.uint8)


def transmitter_image(city: SyntheticMap, tx: int) -> np.ndarray:
    image = np.zeros(city.buildings.shape, dtype=np.uint8)
    image[tuple(city.transmitters[tx])] = 255
    return image


def write_radiomapseer_map(city: SyntheticMap, root: Path) -> None:
    """Write one city's files into the RadioMapSeer layout under ``root``."""
    Image.fromarray(building_image(city)).save(root / "png" / "buildings_complete" / f"{city.map_id}.png")
    for tx, gain_map in enumerate(city.gain_maps):
        name = f"{city.map_id}_{tx}.png"
        Image.fromarray(gain_map).save(root / "gain" / "DPM" / name)
        Image.fromarray(transmitter_image(city, tx)).save(root / "png" / "antennas" / name)
    coordinates = [[int(col), int(row)] for row, col in city.transmitters]
    (root / "antenna" / f"{city.map_id}.json").write_text(json.dumps(coordinates))


def _png_bytes(image: np.ndarray) -> dict[str, bytes | None]:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": None}


def _dataset_rows(city: SyntheticMap) -> list[dict]:
    buildings = _png_bytes(building_image(city))
    return [
        {
            "image": _png_bytes(gain_map),
            "buildings": buildings,
            "transmitter": _png_bytes(transmitter_image(city, tx)),
            "name": f"{city.map_id}_{tx}",
            "map_id": city.map_id,
        }
        for tx, gain_map in enumerate(city.gain_maps)
    ]


@dataclass(frozen=True)
class _Job:
    """What a worker needs to make and store one map (picklable for the process pool)."""

    seed: int
    size: int
    tx_per_map: int
    output_format: OutputFormat
    root: Path

    def __call__(self, map_id: int) -> list[dict] | None:
        city = generate_map(self.seed, map_id, self.size, self.tx_per_map)
        if self.output_format == "datasets":
            return _dataset_rows(city)
        write_radiomapseer_map(city, self.root)
        return None


def _run_jobs(job: _Job, maps: int, workers: int) -> Iterator[list[dict] | None]:
    progress = dict(total=maps, desc="synthetic maps", unit="map", disable=None)
    if workers <= 1:
        yield from tqdm(map(job, range(maps)), **progress)
        return
    # spawned, not forked: a fork of a process that already runs torch's thread pools (the trainer) can hang
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        # in order, so that the datasets rows come out in map order whatever the scheduling
        yield from tqdm(pool.imap(job, range(maps), chunksize=max(1, maps // (8 * workers))), **progress)


def synthesize(
    out: str | Path,
    *,
    maps: int,
    tx_per_map: int,
    size: int = 256,
    seed: int = 0,
    workers: int = 1,
    output_format: OutputFormat = "radiomapseer",
    preview: str | Path | None = None,
) -> Path:
    """Generate ``maps`` cities with ``tx_per_map`` transmitters each into ``out``; returns ``out``.

    With ``preview``, also draw the first few maps beside their cities into that PNG (see :func:`preview_grid`).
    """
    if maps < 1 or tx_per_map < 1:
        raise ValueError(f"expected at least one map and one transmitter, got maps={maps}, tx_per_map={tx_per_map}")
    if size < 16:
        raise ValueError(f"size {size}: expected at least 16 pixels")
    out = Path(out)
    if preview is not None:
        preview_grid(
            preview, seed=seed, size=size, tx_per_map=tx_per_map, rows=min(maps, 4), columns=min(tx_per_map, 3)
        )
    job = _Job(seed=seed, size=size, tx_per_map=tx_per_map, output_format=output_format, root=out)
    if output_format == "radiomapseer":
        for folder in ("gain/DPM", "png/buildings_complete", "png/antennas", "antenna"):
            (out / folder).mkdir(parents=True, exist_ok=True)
        for _ in _run_jobs(job, maps, workers):
            pass
        return out
    if output_format != "datasets":
        raise ValueError(f"output format {output_format!r}: expected 'radiomapseer' or 'datasets'")
    from datasets import Dataset, Features, Image as ImageFeature, Value

    rows = [row for city_rows in _run_jobs(job, maps, workers) for row in city_rows]
    features = Features(
        image=ImageFeature(), buildings=ImageFeature(), transmitter=ImageFeature(), name=Value("string"),
        map_id=Value("int32"),
    )
    Dataset.from_list(rows, features=features).save_to_disk(str(out))
    return out


def preview_grid(
    path: str | Path, *, seed: int, size: int, tx_per_map: int, rows: int = 4, columns: int = 3
) -> Path:
    """A PNG of the first ``rows`` cities of a set, each as its layout (buildings black) beside its first
    ``columns`` gain maps: exactly the maps ``synthesize`` writes with the same arguments."""
    gap = max(2, size // 64)
    spacer_column = np.full((size, gap), 255, np.uint8)
    lines = []
    for map_id in range(rows):
        city = generate_map(seed, map_id, size, tx_per_map)
        images = [255 - building_image(city), *city.gain_maps[:columns]]
        lines.append(np.concatenate([part for image in images for part in (spacer_column, image)][1:], axis=1))
    spacer_row = np.full((gap, lines[0].shape[1]), 255, np.uint8)
    grid = np.concatenate([part for line in lines for part in (spacer_row, line)][1:], axis=0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(path, optimize=True)
    return path


def cache_folder(config: SyntheticConfig) -> Path:
    """Where the synthetic set for ``config`` lives: keyed by every generator parameter and the generator version."""
    name = f"v{GENERATOR_VERSION}-size{config.size}-maps{config.maps}-tx{config.tx_per_map}-seed{config.seed}"
    return Path(config.cache_dir).expanduser() / name


def ensure_synthetic(config: SyntheticConfig, workers: int = 1) -> Path:
    """The cached synthetic set for ``config``, generated on first use.

    It is written into a temporary folder beside the cache and renamed into place in one step, so that an
    interrupted run leaves no half-written cache and two processes racing to build it both end up with a whole one.
    """
    final = cache_folder(config)
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        synthesize(
            staging, maps=config.maps, tx_per_map=config.tx_per_map, size=config.size, seed=config.seed,
            workers=workers,
        )
        os.rename(staging, final)
    except OSError:
        if not final.is_dir():
            raise
        # another process finished first: its copy is the same, keep it
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return final
