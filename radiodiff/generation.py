"""What ``radiodiff generate`` does: building maps and transmitters from PNG files in, radio maps out as 8-bit PNGs
in RadioMapSeer's encoding (gain 0..255, building pixels 0), so that the package's loaders read them back as the
prediction. One map, or a folder of them in RadioMapSeer's naming.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from .data.images import GrayscaleReader, open_image, unit_tensor
from .data.propagation import GAIN_CEILING_DB, GAIN_FLOOR_DB
from .evaluation.pipeline import generate, load_pipeline, map_generators, refuse_sampling_options
from .file_writing import refuse_existing, write_atomically
from .pipelines import RadioDiffPipeline, RadioUNetPipeline, rasterize_transmitter

# RadioMapSeer's transmitter images: png/antennas/{map}_{tx}.png beside png/buildings_complete/{map}.png
TRANSMITTER_NAME = re.compile(r"^(\d+)_(\d+)\.png$")


@dataclass
class MapRequest:
    """One map to generate: its conditions, where they came from, and where it goes."""

    buildings: torch.Tensor  # (1, H, W) on [0, 1], 1 = building
    transmitter: torch.Tensor  # (1, H, W), one lit pixel
    out: Path
    figure: Path | None = None


def parse_tx(text: str, size: int) -> tuple[int, int]:
    """``"X,Y"`` (column, row from the top left) as integers inside a ``size`` x ``size`` map."""
    parts = text.split(",")
    if len(parts) != 2 or not all(part.strip().lstrip("-").isdigit() for part in parts):
        raise ValueError(f"--tx {text!r}: expected X,Y pixel coordinates (column,row), e.g. --tx 120,64")
    x, y = (int(part) for part in parts)
    if not (0 <= x < size and 0 <= y < size):
        raise ValueError(f"--tx {text}: outside the {size}x{size} map; expected 0 <= X, Y < {size}")
    return x, y


def read_map(path: Path, size: int, what: str, reader: GrayscaleReader) -> torch.Tensor:
    """An 8-bit ``size`` x ``size`` PNG as a (1, H, W) tensor on [0, 1]."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; expected the {what} PNG")
    array = reader(open_image(path), path)
    if array.shape != (size, size):
        raise ValueError(f"{path}: a {array.shape[1]}x{array.shape[0]} image; expected {size}x{size}, the "
                         "pipeline's map size")
    return unit_tensor(array)


def read_transmitter(path: Path, size: int, reader: GrayscaleReader) -> torch.Tensor:
    transmitter = read_map(path, size, "transmitter", reader)
    lit = int((transmitter > 0).sum())
    if lit != 1:
        raise ValueError(f"{path}: {lit} lit pixels; expected exactly one (the transmitter)")
    return (transmitter > 0).float()


def check_free_space(buildings: torch.Tensor, transmitter: torch.Tensor, buildings_path: Path, source: str) -> None:
    """Refuse a transmitter on a building pixel of ``buildings_path``: the model was trained on transmitters in the
    streets (the pipeline itself only warns)."""
    y, x = (int(v) for v in torch.nonzero(transmitter[0])[0])
    if buildings[0, y, x] >= 0.5:
        raise ValueError(f"{source}: the transmitter at (x={x}, y={y}) is on a building pixel of {buildings_path}; "
                         "expected a pixel in free space, where the model's training transmitters stand")


def encode_prediction(radio_map: torch.Tensor, buildings: torch.Tensor) -> np.ndarray:
    """A (1, H, W) map on [0, 1] as RadioMapSeer's 8-bit gain image; building pixels are 0, as in the data."""
    encoded = np.rint(radio_map[0].clamp(0, 1).numpy() * 255).astype(np.uint8)
    encoded[buildings[0].numpy() > 0.5] = 0
    return encoded


def write_png(path: Path, array: np.ndarray) -> Path:
    image = io.BytesIO()
    Image.fromarray(array, mode="L").save(image, format="PNG")
    return write_atomically(path, image.getvalue())


def draw_figure(request: MapRequest, encoded: np.ndarray, path: Path) -> Path:
    """The buildings beside the generated map in dB, the transmitter marked on both."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    row, col = (int(v) for v in torch.nonzero(request.transmitter[0])[0])
    gain_db = GAIN_FLOOR_DB + encoded / 255.0 * (GAIN_CEILING_DB - GAIN_FLOOR_DB)
    gain_db = np.ma.masked_where(request.buildings[0].numpy() > 0.5, gain_db)
    figure, (city, radio) = plt.subplots(1, 2, figsize=(9, 4), layout="constrained")
    city.imshow(request.buildings[0].numpy(), cmap="gray_r", vmin=0, vmax=1)
    city.set_title("buildings")
    shown = radio.imshow(gain_db, cmap="viridis", vmin=GAIN_FLOOR_DB, vmax=GAIN_CEILING_DB)
    radio.set_title(f"generated radio map ({request.out.name})")
    figure.colorbar(shown, ax=radio, label="path gain (dB)")
    for axis in (city, radio):
        axis.plot(col, row, marker="*", color="red", markersize=12, markeredgecolor="white")
        axis.axis("off")
    image = io.BytesIO()
    figure.savefig(image, format="png", dpi=100)
    plt.close(figure)
    return write_atomically(path, image.getvalue())


def single_request(buildings: Path, transmitter: Path | None, tx: str | None, out: Path, figure: Path | None,
                   size: int) -> list[MapRequest]:
    reader = GrayscaleReader()
    city = read_map(buildings, size, "buildings", reader)
    if transmitter is not None:
        transmitter_map = read_transmitter(transmitter, size, reader)
    else:
        transmitter_map = rasterize_transmitter(*parse_tx(tx, size), size, size)
    check_free_space(city, transmitter_map, buildings, str(transmitter) if transmitter is not None else f"--tx {tx}")
    return [MapRequest(city, transmitter_map, out, figure)]


def folder_requests(
    buildings: Path, transmitters: Path, out: Path, figures: Path | None, size: int
) -> list[MapRequest]:
    """Every ``{map}_{tx}.png`` of ``transmitters`` with ``buildings/{map}.png``, to ``out/{map}_{tx}.png``."""
    if not transmitters.is_dir():
        raise FileNotFoundError(f"{transmitters}: not a folder; with --buildings a folder, --transmitter is the "
                                "folder of {map}_{tx}.png transmitter images")
    names = sorted((p.name for p in transmitters.iterdir() if TRANSMITTER_NAME.match(p.name)),
                   key=lambda n: tuple(map(int, TRANSMITTER_NAME.match(n).groups())))
    if not names:
        raise FileNotFoundError(f"{transmitters}: no {{map}}_{{tx}}.png transmitter images in it")
    reader = GrayscaleReader()
    requests, cities = [], {}
    for name in names:
        map_id = TRANSMITTER_NAME.match(name).group(1)
        if map_id not in cities:
            cities[map_id] = read_map(buildings / f"{map_id}.png", size, "buildings", reader)
        transmitter_map = read_transmitter(transmitters / name, size, reader)
        check_free_space(cities[map_id], transmitter_map, buildings / f"{map_id}.png", str(transmitters / name))
        requests.append(MapRequest(cities[map_id], transmitter_map, out / name, figures / name if figures else None))
    return requests


def run_generate(
    pipeline_dir: str,
    buildings: str,
    out: str,
    *,
    transmitter: str | None = None,
    tx: str | None = None,
    figure: str | None = None,
    steps: int | None = None,
    seed: int = 0,
    batch_size: int = 8,
    device: str = "cpu",
    overwrite: bool = False,
) -> list[Path]:
    """Generate the radio map of one building map and transmitter (``transmitter`` PNG or ``tx`` "X,Y"), or of a
    folder: ``buildings`` holding ``{map}.png`` and ``transmitter`` holding ``{map}_{tx}.png`` (RadioMapSeer's
    ``png/buildings_complete`` and ``png/antennas``), each written to ``out/{map}_{tx}.png``.

    Map ``i`` (in the order of its transmitter name, by map then transmitter number) is sampled with a
    generator seeded ``seed + i``, as :func:`~radiodiff.evaluation.evaluate_pipeline` does. Returns the maps'
    paths. Nothing existing is replaced without ``overwrite``. ``steps`` defaults to the pipeline's
    ``default_num_inference_steps`` (the steps its run was evaluated with); a pipeline without a sampler
    (RadioUNet's) maps in one pass and refuses it. A transmitter on a building pixel is
    refused: the model was trained on transmitters in the streets.
    """
    if (transmitter is None) == (tx is None):
        raise ValueError("give the transmitter either as --transmitter PNG (or folder) or as --tx X,Y, not both")
    if steps is not None and steps < 1:
        raise ValueError(f"--steps: {steps}; expected an integer >= 1")
    refuse_sampling_options(pipeline_dir, {"--steps": steps})
    pipeline = load_pipeline(pipeline_dir)
    one_pass = "scheduler" not in pipeline.components
    size = pipeline.sample_size  # the map size the pipeline checks its inputs against
    if Path(buildings).is_dir():
        if tx is not None:
            raise ValueError(f"--tx: {buildings} is a folder; give --transmitter, the folder of {{map}}_{{tx}}.png "
                             "transmitter images")
        figures = Path(figure) if figure else None
        requests = folder_requests(Path(buildings), Path(transmitter), Path(out), figures, size)
    else:
        requests = single_request(Path(buildings), Path(transmitter) if transmitter else None, tx, Path(out),
                          Path(figure) if figure else None, size)
    outputs = [path for request in requests for path in (request.out, request.figure) if path is not None]
    refuse_existing(outputs, overwrite)
    if steps is None and not one_pass:
        steps = pipeline.config.default_num_inference_steps
    return generate_requests(pipeline, requests, steps=steps, seed=seed, batch_size=batch_size, device=device)


def generate_requests(
    pipeline: RadioDiffPipeline | RadioUNetPipeline,
    requests: list[MapRequest],
    *,
    steps: int | None,
    seed: int,
    batch_size: int,
    device: str,
) -> list[Path]:
    pipeline.to(device)
    pipeline.set_progress_bar_config(disable=True)
    written = []
    with tqdm(total=len(requests), desc="generate", unit="map", disable=len(requests) == 1) as progress:
        for start in range(0, len(requests), batch_size):
            batch = requests[start : start + batch_size]
            radio_maps = generate(pipeline, torch.stack([request.buildings for request in batch]),
                                  torch.stack([request.transmitter for request in batch]), num_inference_steps=steps,
                                  generators=map_generators(device, seed, range(start, start + len(batch))))
            for request, radio_map in zip(batch, radio_maps):
                encoded = encode_prediction(radio_map, request.buildings)
                written.append(write_png(request.out, encoded))
                if request.figure is not None:
                    draw_figure(request, encoded, request.figure)
            progress.update(len(batch))
    return written
