"""Latents for the downstream diffusion stage, saved as a ``datasets`` dataset that needs no radiodiff to read.

Each row is one map: its name, the VAE posterior's mean and std (unscaled), optionally a posterior sample,
and, when the maps come with them, the conditions (building and transmitter rasters).
"""

from __future__ import annotations

import functools
import json
import tempfile
import uuid
from pathlib import Path
from typing import Any, Iterator

import datasets
import torch
from datasets.exceptions import DatasetGenerationError
from torch.utils.data import Dataset

from .data.huggingface import CONDITION_COLUMNS
from .evaluation.inference import batches, inference, model_input, seeded_generator
from .file_names import CARD_FILE, LATENTS_INFO
from .file_writing import write_atomically
from .models import downsampling_factor


def latent_shape_of(vae_config: Any, height: int, width: int) -> tuple[int, int, int]:
    """(C, h, w) of the latent of a ``height`` x ``width`` map, for any ``AutoencoderKL`` config: each encoder
    level after the first halves the resolution."""
    factor = downsampling_factor(vae_config.block_out_channels)
    return (vae_config.latent_channels, height // factor, width // factor)


def _latent_features(
    latent_shape: tuple[int, ...], condition_shape: tuple[int, ...] | None, sample: bool
) -> datasets.Features:
    def array(shape: tuple[int, ...]) -> datasets.Array3D:
        return datasets.Array3D(shape=tuple(shape), dtype="float32")

    columns: dict[str, Any] = {
        "name": datasets.Value("string"),
        "latent_mean": array(latent_shape),
        "latent_std": array(latent_shape),
    }
    if sample:
        columns["latent_sample"] = array(latent_shape)
    if condition_shape is not None:
        columns.update({column: array(condition_shape) for column in CONDITION_COLUMNS})
    return datasets.Features(columns)


def _encoded_rows(vae, dataset, batch_size, device, num_workers, sample, seed) -> Iterator[dict[str, Any]]:
    generator = seeded_generator(device, seed) if sample else None
    with inference(vae, device):
        for batch in batches(dataset, batch_size=batch_size, num_workers=num_workers, description="encode latents"):
            posterior = vae.encode(model_input(batch, vae, device)).latent_dist
            columns = {"latent_mean": posterior.mean, "latent_std": posterior.std}
            if sample:
                columns["latent_sample"] = posterior.sample(generator=generator)
            columns.update({column: batch[column] for column in CONDITION_COLUMNS if column in batch})
            arrays = {column: values.float().cpu().numpy() for column, values in columns.items()}
            for index, name in enumerate(batch["name"]):
                yield {"name": name, **{column: values[index] for column, values in arrays.items()}}


def encode_latents(
    vae: torch.nn.Module,
    dataset: Dataset,
    out_dir: str | Path,
    *,
    batch_size: int,
    device: torch.device | str,
    sample: bool = False,
    seed: int = 0,
    num_workers: int = 0,
    source: dict[str, Any] | None = None,
) -> datasets.Dataset:
    """Encode every map of ``dataset`` and save the latents with ``save_to_disk(out_dir)``, plus a README.md
    and ``latents.json`` (scaling factor, shapes, ``source``: where the model and maps came from).

    Condition columns are written when the dataset's items carry ``"buildings"`` and ``"transmitter"``.
    """
    first = dataset[0]
    latent_shape = latent_shape_of(vae.config, *first["gain_map"].shape[-2:])
    has_conditions = all(column in first for column in CONDITION_COLUMNS)
    condition_shape = tuple(first["buildings"].shape) if has_conditions else None
    features = _latent_features(latent_shape, condition_shape, sample)
    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="radiodiff-latents-") as cache_dir:
        try:
            latents = datasets.Dataset.from_generator(
                # bound here rather than passed as gen_kwargs, which datasets would shard when the maps are a list
                functools.partial(_encoded_rows, vae, dataset, batch_size, device, num_workers, sample, seed),
                features=features,
                cache_dir=cache_dir,
                # hashing the model to fingerprint the generator would be slow and is pointless for a one-off cache
                fingerprint=uuid.uuid4().hex,
            )
        except DatasetGenerationError as error:
            # datasets wraps whatever the maps raised; a bad map (an unreadable file, a wrong size) must reach the
            # user as itself, naming its file, not as datasets' generation failure
            if isinstance(error.__cause__, ValueError):
                raise error.__cause__ from None
            raise
        latents.save_to_disk(str(out_dir))
    info = {
        # the VAE's normalisation, radiodiff.models.vae.normalize_latents: (z - shift_factor) * scaling_factor
        "scaling_factor": float(vae.config.scaling_factor),
        "shift_factor": vae.config.shift_factor,
        "latent_shape": list(latent_shape),
        "condition_shape": list(condition_shape) if condition_shape else None,
        "num_maps": len(latents),
        "sampled": sample,
        "seed": seed if sample else None,
        "source": source or {},
    }
    write_atomically(out_dir / LATENTS_INFO, json.dumps(info, indent=2) + "\n")
    write_atomically(out_dir / CARD_FILE, latents_readme(info, list(features)))
    return datasets.load_from_disk(str(out_dir))


def latents_readme(info: dict[str, Any], columns: list[str]) -> str:
    """The README of a latents folder: what each column is and how to use it without radiodiff."""
    shape = "x".join(str(n) for n in info["latent_shape"])
    raster = "x".join(str(n) for n in info["condition_shape"] or [])
    described = {
        "name": "the map's name, `<city>_<transmitter>` (string)",
        "latent_mean": f"posterior mean of the VAE latent, float32 {shape}, unscaled",
        "latent_std": f"posterior standard deviation, float32 {shape} (exp(0.5 * logvar))",
        "latent_sample": f"one posterior sample mean + std * eps (seed {info['seed']}), float32 {shape}, unscaled",
        "buildings": f"building raster on [0, 1] (1 = building), float32 {raster}",
        "transmitter": f"transmitter raster (1 at the transmitter's pixel, 0 elsewhere), float32 {raster}",
    }
    shift = info["shift_factor"] or 0.0
    lines = [
        "# RadioDiff VAE latents",
        "",
        f"{info['num_maps']} maps encoded by the RadioDiff first-stage VAE, saved with `datasets` `save_to_disk`.",
        f"Source: `{json.dumps(info['source'])}`.",
        "",
        "| column | content |",
        "|---|---|",
        *(f"| `{column}` | {described[column]} |" for column in columns),
        "",
        "The diffusion stage works on `(z - shift_factor) * scaling_factor`, diffusers' SD3/Flux convention, with",
        f"`shift_factor = {shift}` and `scaling_factor = {info['scaling_factor']}` (the VAE's `config.json`, also in",
        "`latents.json`; a null `shift_factor` is 0). To decode a generated latent, take `latent / scaling_factor +",
        "shift_factor` before `AutoencoderKL.decode`.",
        "",
        "```python",
        "import json, datasets, torch",
        "latents = datasets.load_from_disk(\"THIS_FOLDER\").with_format(\"torch\")",
        "info = json.load(open(\"THIS_FOLDER/latents.json\"))",
        "row = latents[0]",
        "z = row[\"latent_mean\"] + row[\"latent_std\"] * torch.randn_like(row[\"latent_std\"])",
        "z = (z - (info[\"shift_factor\"] or 0.0)) * info[\"scaling_factor\"]",
        "```",
        "",
    ]
    return "\n".join(lines)


def read_latents_info(latents_dir: str | Path) -> dict[str, Any]:
    """``latents.json`` of an ``encode_latents`` folder; a ``ValueError`` naming the folder if it is not one."""
    path = Path(latents_dir) / LATENTS_INFO
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(
            f"{latents_dir}: not a `radiodiff encode-latents` folder (no readable {LATENTS_INFO}: {error})"
        ) from error


class EncodedLatentsDataset(Dataset):
    """An ``encode_latents`` folder with conditions, as items of ``latent_mean``, ``latent_std`` (unscaled),
    ``buildings``, ``transmitter`` and ``name``: what the diffusion stage trains on without running the VAE."""

    def __init__(self, latents_dir: str | Path):
        self.info = read_latents_info(latents_dir)
        if self.info.get("condition_shape") is None:
            raise ValueError(
                f"{latents_dir}: latents without the buildings and transmitter columns; encode them from maps that "
                "carry their conditions (`radiodiff encode-latents` writes them for RadioMapSeer and synthetic data)"
            )
        self.rows = datasets.load_from_disk(str(latents_dir)).with_format(
            "torch", columns=["latent_mean", "latent_std", *CONDITION_COLUMNS], output_all_columns=True
        )

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.rows[index]
