"""What the demo computes, without Gradio: cities from images, a transmitter kept in the streets, each model's map,
the physics baseline, the error against the truth, and all of them as colour images with a dB colour bar.

Maps travel as float arrays (H, W) on [0, 1], RadioMapSeer's encoding (:data:`GAIN_FLOOR_DB` -> 0,
:data:`GAIN_CEILING_DB` -> 1, linear in dB); buildings as (H, W) arrays of 0 and 1; a transmitter as ``(x, y)``,
column and row from the top left.
"""

from __future__ import annotations

import functools
import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

from ..config.loading import load_data_config
from ..data import build_dataset, prepare_data, unaugmented
from ..data.propagation import GAIN_CEILING_DB, GAIN_FLOOR_DB
from ..evaluation.baseline import log_distance_map, transmitter_positions
from ..evaluation.metrics import to_unit_range
from ..evaluation.pipeline import generate, load_pipeline, map_generators
from ..file_names import RUN_CONFIG_FILE
from ..generation import encode_prediction
from ..pipelines import rasterize_transmitter

GAIN_COLORMAP = "viridis"
ERROR_COLORMAP = "magma"
# the error colour scale's top: errors beyond it saturate (a good model's typical error is a few dB)
ERROR_RANGE_DB = 20.0
BUILDING_RGB = (190, 190, 190)
TRANSMITTER_RGB = (255, 40, 40)
# maps are drawn at least this many pixels across: a 64x64 map is too small to click on
DISPLAY_PIXELS = 256


@dataclass
class DemoModel:
    """A loaded pipeline as the demo runs it.

    Args:
        label: the name the selector shows (the run folder's name for ``OUTPUT_DIR/pipeline``).
        pipeline: a :class:`~radiodiff.pipelines.RadioDiffPipeline` or
            :class:`~radiodiff.pipelines.RadioUNetPipeline`, on the CPU, its progress bar off.
        map_size: the side of the maps it takes and returns.
        default_steps: the sampling steps its run was evaluated with; None for a one-pass pipeline.
    """

    label: str
    pipeline: object
    map_size: int
    default_steps: int | None

    @property
    def samples(self) -> bool:
        return self.default_steps is not None


@dataclass
class DatasetCity:
    """One map of a split: its buildings, its transmitter and the true map, all (H, W) on [0, 1]."""

    name: str
    buildings: np.ndarray
    transmitter: tuple[int, int]
    truth: np.ndarray


def model_label(pipeline_dir: Path) -> str:
    """``OUTPUT_DIR/pipeline`` is named by its run; any other folder by itself."""
    pipeline_dir = pipeline_dir.resolve()
    return pipeline_dir.parent.name if pipeline_dir.name == "pipeline" else pipeline_dir.name


def load_models(pipeline_dirs: Sequence[str | Path], labels: Sequence[str] | None = None) -> list[DemoModel]:
    """Each saved pipeline folder loaded for the CPU; a folder that is not one raises ``FileNotFoundError`` or
    ``ValueError`` naming it (:func:`~radiodiff.evaluation.load_pipeline`). All must take maps of one size."""
    if not pipeline_dirs:
        raise ValueError("expected at least one pipeline folder")
    labels = list(labels) if labels is not None else [model_label(Path(folder)) for folder in pipeline_dirs]
    if len(labels) != len(pipeline_dirs) or len(set(labels)) != len(labels):
        raise ValueError(f"model names {labels}: expected one distinct name per pipeline folder")
    models = []
    for folder, label in zip(pipeline_dirs, labels):
        pipeline = load_pipeline(folder)
        pipeline.set_progress_bar_config(disable=True)
        one_pass = "scheduler" not in pipeline.components
        steps = None if one_pass else pipeline.config.default_num_inference_steps
        models.append(DemoModel(label, pipeline.to("cpu"), pipeline.sample_size, steps))
    sizes = {model.map_size for model in models}
    if len(sizes) > 1:
        raise ValueError(f"{', '.join(map(str, pipeline_dirs))}: pipelines of different map sizes "
                         f"({', '.join(f'{m.label} {m.map_size}' for m in models)}); expected one size to compare")
    return models


def dataset_cities(pipeline_dir: str | Path, config_path: str | None, split: str, map_size: int) -> list[DatasetCity]:
    """The maps of ``split`` of the data ``config_path`` names (default: the run's ``config.yaml`` beside the
    pipeline folder); none when there is no such config (a pipeline downloaded from the Hub)."""
    if config_path is None:
        config_path = Path(pipeline_dir).resolve().parent / RUN_CONFIG_FILE
        if not config_path.is_file():
            return []
    data = load_data_config(config_path)
    prepare_data(data)
    dataset = unaugmented(build_dataset(data, split, with_conditions=True))
    cities = []
    for index in range(len(dataset)):
        item = dataset[index]
        if item["buildings"].shape[-1] != map_size:
            raise ValueError(f"{config_path}: split {split!r} holds {item['buildings'].shape[-1]}-pixel maps; "
                             f"expected {map_size}, the pipeline's map size")
        ((row, col),) = transmitter_positions(item["transmitter"][None])
        cities.append(DatasetCity(item["name"], item["buildings"][0].numpy(), (col, row),
                                  to_unit_range(item["gain_map"])[0].numpy()))
    return cities


def city_from_image(image: np.ndarray | Image.Image, map_size: int) -> tuple[np.ndarray, str | None]:
    """A building map (``map_size`` x ``map_size``, 1 = building: bright pixels) from any image, and a note saying
    what was converted or resized to get it (None when the image was already an 8-bit map of that size)."""
    picture = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    notes = []
    if picture.mode != "L":
        notes.append(f"converted from {picture.mode} to grayscale")
        picture = picture.convert("L")
    if picture.size != (map_size, map_size):
        notes.append(f"resized from {picture.size[0]}x{picture.size[1]} to the model's {map_size}x{map_size}")
        picture = picture.resize((map_size, map_size), Image.Resampling.NEAREST)
    buildings = (np.asarray(picture) >= 128).astype(np.float32)
    return buildings, ("Building image " + " and ".join(notes) + "." if notes else None)


def place_transmitter(buildings: np.ndarray, x: int, y: int) -> tuple[tuple[int, int], str | None]:
    """``(x, y)`` inside the map and off the buildings: a transmitter on a building moves to the nearest free pixel,
    as the model was trained on transmitters in the streets. Returns the position and a note when it moved."""
    height, width = buildings.shape
    x, y = min(max(int(x), 0), width - 1), min(max(int(y), 0), height - 1)
    occupied = buildings >= 0.5
    if occupied.all():
        raise ValueError("the city is all buildings: there is no free pixel for the transmitter")
    if not occupied[y, x]:
        return (x, y), None
    # for every pixel, the indices of the nearest free pixel (the nearest zero of `occupied`)
    _, (rows, cols) = ndimage.distance_transform_edt(occupied, return_indices=True)
    free_x, free_y = int(cols[y, x]), int(rows[y, x])
    return (free_x, free_y), (f"The transmitter at (x={x}, y={y}) was on a building; moved to the nearest free "
                              f"pixel (x={free_x}, y={free_y}).")


def run_model(model: DemoModel, buildings: np.ndarray, transmitter: tuple[int, int], *, steps: int | None,
              seed: int) -> np.ndarray:
    """The model's map (H, W) on [0, 1], sampled with a generator seeded ``seed`` as ``radiodiff generate`` samples
    its first map; ``steps`` is ignored for a one-pass pipeline."""
    size = buildings.shape[0]
    radio_map = generate(model.pipeline, torch.from_numpy(buildings)[None, None],
                         rasterize_transmitter(*transmitter, size, size)[None],
                         num_inference_steps=steps if model.samples else None,
                         generators=map_generators("cpu", seed, [0]))
    return radio_map[0, 0].numpy()


def timed_run(model: DemoModel, buildings: np.ndarray, transmitter: tuple[int, int], *, steps: int | None,
              seed: int) -> tuple[np.ndarray, float]:
    """:func:`run_model` and its wall-clock seconds."""
    start = time.perf_counter()
    radio_map = run_model(model, buildings, transmitter, steps=steps, seed=seed)
    return radio_map, time.perf_counter() - start


def physics_baseline(buildings: np.ndarray, transmitter: tuple[int, int]) -> np.ndarray:
    """The log-distance baseline (:func:`~radiodiff.evaluation.baseline.log_distance_map`), (H, W) on [0, 1]."""
    size = buildings.shape[0]
    return log_distance_map(torch.from_numpy(buildings)[None, None],
                            rasterize_transmitter(*transmitter, size, size)[None])[0, 0].numpy()


def error_db(radio_map: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """|map - truth| in dB, (H, W)."""
    return np.abs(radio_map - truth) * (GAIN_CEILING_DB - GAIN_FLOOR_DB)


def encoded_map(radio_map: np.ndarray, buildings: np.ndarray) -> np.ndarray:
    """The map as ``radiodiff generate`` writes it: RadioMapSeer's 8-bit encoding, building pixels 0."""
    return encode_prediction(torch.from_numpy(radio_map)[None], torch.from_numpy(buildings)[None])


def _display(rgb: np.ndarray, buildings: np.ndarray, transmitter: tuple[int, int] | None) -> np.ndarray:
    """Buildings painted grey, the transmitter a cross, then enlarged pixel by pixel to be seen and clicked."""
    rgb = rgb.copy()
    rgb[buildings >= 0.5] = BUILDING_RGB
    scale = display_scale(buildings.shape[0])
    rgb = rgb.repeat(scale, axis=0).repeat(scale, axis=1)
    if transmitter is not None:
        centre_x, centre_y = (coordinate * scale + scale // 2 for coordinate in transmitter)
        arm = max(3, scale * 2)
        rgb[centre_y, max(centre_x - arm, 0) : centre_x + arm + 1] = TRANSMITTER_RGB
        rgb[max(centre_y - arm, 0) : centre_y + arm + 1, centre_x] = TRANSMITTER_RGB
    return rgb


def display_scale(map_size: int) -> int:
    """How many screen pixels a map pixel spans in the demo's images (a click's pixel over it is the map's)."""
    return max(1, DISPLAY_PIXELS // map_size)


def colorize(values: np.ndarray, colormap: str, buildings: np.ndarray,
             transmitter: tuple[int, int] | None) -> np.ndarray:
    """``values`` on [0, 1] as an 8-bit RGB image in ``colormap``, buildings grey, the transmitter marked."""
    import matplotlib

    rgb = matplotlib.colormaps[colormap](np.clip(values, 0.0, 1.0), bytes=True)[..., :3]
    return _display(rgb, buildings, transmitter)


def colorize_gain(radio_map: np.ndarray, buildings: np.ndarray, transmitter: tuple[int, int] | None) -> np.ndarray:
    """A map on [0, 1] in the gain colormap (its 0..1 is :data:`GAIN_FLOOR_DB`..:data:`GAIN_CEILING_DB`)."""
    return colorize(radio_map, GAIN_COLORMAP, buildings, transmitter)


def colorize_error(error: np.ndarray, buildings: np.ndarray, transmitter: tuple[int, int]) -> np.ndarray:
    """An error in dB on 0..:data:`ERROR_RANGE_DB` in the error colormap."""
    return colorize(error / ERROR_RANGE_DB, ERROR_COLORMAP, buildings, transmitter)


def city_image(buildings: np.ndarray, transmitter: tuple[int, int] | None) -> np.ndarray:
    """The city to click on: streets black, buildings grey, the transmitter marked."""
    return _display(np.zeros((*buildings.shape, 3), np.uint8), buildings, transmitter)


@functools.cache
def colour_bars() -> np.ndarray:
    """The two colour scales as an RGB image: path gain in dB (RadioMapSeer's range) and |error| in dB."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    figure, axes = plt.subplots(2, 1, figsize=(6, 1.5), layout="constrained")
    scales = ((GAIN_COLORMAP, GAIN_FLOOR_DB, GAIN_CEILING_DB, "path gain (dB); grey: buildings"),
              (ERROR_COLORMAP, 0.0, ERROR_RANGE_DB, f"|error| (dB), {ERROR_RANGE_DB:g} dB and more at the top"))
    for axis, (colormap, low, high, label) in zip(axes, scales):
        mappable = matplotlib.cm.ScalarMappable(Normalize(low, high), colormap)
        figure.colorbar(mappable, cax=axis, orientation="horizontal", label=label)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return np.asarray(Image.open(buffer).convert("RGB"))
