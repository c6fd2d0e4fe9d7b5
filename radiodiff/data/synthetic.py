"""The built-in synthetic RadioMapSeer: random cities, transmitters in their streets, dominant-path-like gain maps.

``synthesize`` writes them in RadioMapSeer's own layout (so that :class:`~radiodiff.data.RadioMapSeerDataset`
reads synthetic and real data alike) or as a saved Hugging Face ``datasets`` dataset::

    gain/DPM/{map}_{tx}.png            gain, RadioMapSeer's 8-bit encoding (see ``propagation.encode_gain``)
    gain/SionnaRT/{map}_{tx}.png       the same cities ray-traced by Sionna RT (``engine="sionna"``, see ``raytracing``)
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
from typing import Iterator, Literal, Sequence

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..config import SyntheticConfig
from ..file_writing import write_atomically
from .city import place_transmitters, random_city
from .propagation import City, PropagationModel, encode_gain, path_gain_db, prepare_city
from .raytracing import (
    SIMULATION,
    CityRaytracer,
    RaytracingError,
    RaytracingSettings,
    building_heights,
    import_sionna,
)

# bump when the fast engine's maps change, so that caches made by an older one are not reused (2: the propagation
# constants fitted to Sionna RT)
GENERATOR_VERSION = 2
# bump when the cities change (buildings, transmitter pixels): what a ray-traced folder's record pins
CITY_LAYOUT_VERSION = 1

OutputFormat = Literal["radiomapseer", "datasets"]
Engine = Literal["fast", "sionna"]


@dataclass
class SyntheticMap:
    """One city and its transmitters' gain maps."""

    map_id: int
    buildings: np.ndarray  # (H, W) bool, True = building
    transmitters: np.ndarray  # (T, 2) int, (row, col)
    gain_maps: np.ndarray  # (T, H, W) uint8, RadioMapSeer's encoding


def city_layout(seed: int, map_id: int, size: int, tx_per_map: int) -> tuple[np.ndarray, np.ndarray]:
    """The buildings (H, W) and transmitter pixels (T, 2) of city ``map_id`` of the set ``seed``, whichever engine
    then computes its gain: the same arrays on every call and in every process."""
    rng = np.random.default_rng([seed, map_id])
    buildings = random_city(rng, size)
    return buildings, place_transmitters(rng, buildings, tx_per_map)


def generate_map(seed: int, map_id: int, size: int, tx_per_map: int) -> SyntheticMap:
    """City ``map_id`` of the synthetic set ``seed`` with the fast engine's gain maps."""
    buildings, transmitters = city_layout(seed, map_id, size, tx_per_map)
    gain_maps = fast_gain_maps(prepare_city(buildings), transmitters)
    return SyntheticMap(map_id=map_id, buildings=buildings, transmitters=transmitters, gain_maps=gain_maps)


def fast_gain_maps(city: City, transmitters: np.ndarray, model: PropagationModel = PropagationModel()) -> np.ndarray:
    """The fast engine's encoded gain maps (T, H, W) of a prepared city for its (T, 2) transmitter pixels."""
    return np.stack([encode_gain(path_gain_db(city, (int(row), int(col)), model)) for row, col in transmitters])


def raytraced_map(
    seed: int, map_id: int, size: int, tx_per_map: int, settings: RaytracingSettings, threads: int | None = None
) -> SyntheticMap:
    """City ``map_id`` of the synthetic set ``seed`` with Sionna RT's gain maps (:mod:`.raytracing`)."""
    buildings, transmitters = city_layout(seed, map_id, size, tx_per_map)
    # a stream of its own, so that the fast engine's draws (and its maps) stay as they are
    rng = np.random.default_rng([seed, map_id, 1])
    tracer = CityRaytracer(building_heights(buildings, settings.building_height_m, rng), settings, threads=threads)
    gain_maps = np.stack([
        encode_gain(tracer.gain_db((int(row), int(col)), seed=int(rng.integers(2**31)))) for row, col in transmitters
    ])
    return SyntheticMap(map_id=map_id, buildings=buildings, transmitters=transmitters, gain_maps=gain_maps)


def building_image(city: SyntheticMap) -> np.ndarray:
    return np.where(city.buildings, 255, 0).astype(np.uint8)


def transmitter_image(city: SyntheticMap, tx: int) -> np.ndarray:
    image = np.zeros(city.buildings.shape, dtype=np.uint8)
    image[tuple(city.transmitters[tx])] = 255
    return image


def write_radiomapseer_map(city: SyntheticMap, root: Path, simulation: str = "DPM") -> None:
    """Write one city's files into the RadioMapSeer layout under ``root``, its gain maps into ``gain/<simulation>``."""
    _save_png(building_image(city), root / "png" / "buildings_complete" / f"{city.map_id}.png")
    coordinates = [[int(col), int(row)] for row, col in city.transmitters]
    (root / "antenna" / f"{city.map_id}.json").write_text(json.dumps(coordinates))
    for tx, gain_map in enumerate(city.gain_maps):
        name = f"{city.map_id}_{tx}.png"
        _save_png(transmitter_image(city, tx), root / "png" / "antennas" / name)
        # last, and whole or not at all: a gain map on disk means its city's other files are there (resume relies on it)
        _save_png(gain_map, root / "gain" / simulation / name)


def _save_png(image: np.ndarray, path: Path) -> None:
    write_atomically(path, _encode_png(image))


def _encode_png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _png_bytes(image: np.ndarray) -> dict[str, bytes | None]:
    return {"bytes": _encode_png(image), "path": None}


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


@dataclass(frozen=True)
class _RaytracingJob:
    """Ray-trace one city of the set with Sionna RT and write it (picklable for the process pool)."""

    seed: int
    size: int
    tx_per_map: int
    root: Path
    settings: RaytracingSettings
    threads: int

    def __call__(self, map_id: int) -> None:
        try:
            city = raytraced_map(self.seed, map_id, self.size, self.tx_per_map, self.settings, self.threads)
        except RaytracingError as error:
            raise RaytracingError(f"map {map_id} of {self.root}: {error}") from None
        write_radiomapseer_map(city, self.root, SIMULATION)


def _run_jobs(
    job: _Job | _RaytracingJob, map_ids: Sequence[int], workers: int, desc: str = "synthetic maps"
) -> Iterator[list[dict] | None]:
    progress = dict(total=len(map_ids), desc=desc, unit="map", disable=None)
    if workers <= 1:
        yield from tqdm(map(job, map_ids), **progress)
        return
    # spawned, not forked: a fork of a process that already runs torch's thread pools (the trainer) can hang
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        # in order, so that the datasets rows come out in map order whatever the scheduling
        yield from tqdm(pool.imap(job, map_ids, chunksize=max(1, len(map_ids) // (8 * workers))), **progress)


def city_is_written(gain_folder: Path, map_id: int, tx_per_map: int) -> bool:
    """Whether every gain map of city ``map_id`` is in ``gain_folder`` (written last, and whole: the city is done)."""
    return all((gain_folder / f"{map_id}_{tx}.png").is_file() for tx in range(tx_per_map))


def raytrace(
    out: Path, *, maps: int, tx_per_map: int, size: int, seed: int, workers: int, settings: RaytracingSettings,
    threads: int | None,
) -> Path:
    """The Sionna engine's part of :func:`synthesize`: the cities not yet in ``out/gain/SionnaRT``, ray-traced.

    ``gain/SionnaRT/synth.json`` records what the folder's maps were made with; a run with other settings is
    refused rather than mixed in. A city counts as written when all its gain maps are, each renamed into place
    whole, so an interrupted run resumes with the first city it had not finished.
    """
    # a missing extra or LLVM is said once, before anything is written, not as the first city's failure
    import_sionna()
    for folder in (f"gain/{SIMULATION}", "png/buildings_complete", "png/antennas", "antenna"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    gain_folder = out / "gain" / SIMULATION
    made_with = {"generator_version": CITY_LAYOUT_VERSION, "seed": seed, "size": size, "tx_per_map": tx_per_map,
                 **settings.to_json()}
    record = gain_folder / "synth.json"
    earlier = json.loads(record.read_text()) if record.is_file() else made_with
    changed = [name for name, value in made_with.items() if earlier.get(name) != value]
    if changed:
        raise ValueError(
            f"{record}: the maps there were made with other settings ({', '.join(changed)} differ); choose another "
            "--out, or the same settings to resume"
        )
    write_atomically(record, json.dumps(made_with))
    missing = [map_id for map_id in range(maps) if not city_is_written(gain_folder, map_id, tx_per_map)]
    job = _RaytracingJob(seed=seed, size=size, tx_per_map=tx_per_map, root=out, settings=settings,
                         threads=threads or max(1, (os.cpu_count() or 1) // workers))
    for _ in _run_jobs(job, missing, workers, desc="ray-traced cities"):
        pass
    return out


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
    engine: Engine = "fast",
    raytracing: RaytracingSettings | None = None,
    threads: int | None = None,
) -> Path:
    """Generate ``maps`` cities with ``tx_per_map`` transmitters each into ``out``; returns ``out``.

    With ``preview``, also draw the first few maps beside their cities into that PNG (see :func:`preview_grid`).
    ``engine="sionna"`` ray-traces the same cities with Sionna RT (``raytracing`` settings, ``threads`` Dr.Jit
    threads per worker, default the cores shared out) into ``gain/SionnaRT/``, resuming where a run stopped.
    """
    if maps < 1 or tx_per_map < 1:
        raise ValueError(f"expected at least one map and one transmitter, got maps={maps}, tx_per_map={tx_per_map}")
    if size < 16:
        raise ValueError(f"size {size}: expected at least 16 pixels")
    out = Path(out)
    if engine == "sionna":
        if output_format != "radiomapseer" or preview is not None:
            raise ValueError("engine sionna: writes the RadioMapSeer layout only, without a preview")
        return raytrace(out, maps=maps, tx_per_map=tx_per_map, size=size, seed=seed, workers=workers,
                        settings=raytracing or RaytracingSettings(), threads=threads)
    if engine != "fast":
        raise ValueError(f"engine {engine!r}: expected 'fast' or 'sionna'")
    if preview is not None:
        preview_grid(
            preview, seed=seed, size=size, tx_per_map=tx_per_map, rows=min(maps, 4), columns=min(tx_per_map, 3)
        )
    job = _Job(seed=seed, size=size, tx_per_map=tx_per_map, output_format=output_format, root=out)
    if output_format == "radiomapseer":
        for folder in ("gain/DPM", "png/buildings_complete", "png/antennas", "antenna"):
            (out / folder).mkdir(parents=True, exist_ok=True)
        for _ in _run_jobs(job, range(maps), workers):
            pass
        return out
    if output_format != "datasets":
        raise ValueError(f"output format {output_format!r}: expected 'radiomapseer' or 'datasets'")
    from datasets import Dataset, Features, Image as ImageFeature, Value

    rows = [row for city_rows in _run_jobs(job, range(maps), workers) for row in city_rows]
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
