"""Radio-map data: the synthetic generator, RadioMapSeer and Hugging Face datasets behind one ``DataConfig``.

The trainer calls :func:`prepare_data` once on the main process (it generates the synthetic cache or downloads a
Hub dataset), then :func:`build_dataset` on every process.
"""

from __future__ import annotations

from torch.utils.data import Dataset

from ..config import DataConfig
from .augment import DihedralAugmented, dihedral_transform, unaugmented
from .huggingface import HuggingFaceMapDataset, load_source
from .images import UnreadableImageError
from .radiomapseer import RadioMapSeerDataset
from .splits import SPLITS, split_map_ids
from .synthetic import ensure_synthetic, generate_map, synthesize

__all__ = [
    "DihedralAugmented",
    "HuggingFaceMapDataset",
    "RadioMapSeerDataset",
    "UnreadableImageError",
    "build_dataset",
    "dihedral_transform",
    "generate_map",
    "prepare_data",
    "split_map_ids",
    "synthesize",
    "unaugmented",
]


def _require_root(config: DataConfig) -> str:
    if not config.root:
        raise ValueError(f"data.root: required for data.source {config.source!r}, got nothing")
    return config.root


def prepare_data(config: DataConfig) -> None:
    """The one-time step before datasets are built: generate the synthetic cache, or fetch a Hub dataset.

    Idempotent, and meant for the main process only; a RadioMapSeer folder needs nothing.
    """
    if config.source == "synthetic":
        ensure_synthetic(config.synthetic, workers=max(1, config.num_workers))
    elif config.source == "datasets":
        load_source(_require_root(config))


def build_dataset(config: DataConfig, split: str, *, with_conditions: bool = False) -> Dataset:
    """The ``split`` (train, val or test) of the source ``config`` names, as dicts of ``gain_map`` and ``name``.

    The synthetic source is generated into its cache on first use (see :func:`prepare_data`) and split by map
    like the leak-free protocol, whatever ``config.protocol`` says. ``config.augment`` applies to the train
    split only.
    """
    dataset = _source_dataset(config, split, with_conditions=with_conditions)
    if split == "train" and config.augment == "dihedral":
        return DihedralAugmented(dataset)
    return dataset


def _source_dataset(config: DataConfig, split: str, *, with_conditions: bool) -> Dataset:
    if split not in SPLITS:
        raise ValueError(f"split {split!r}: expected one of {', '.join(SPLITS)}")
    shared = dict(
        resolution=config.resolution,
        allow_resize=config.allow_resize,
        with_conditions=with_conditions,
        on_corrupt=config.on_corrupt,
    )
    if config.source == "synthetic":
        root = ensure_synthetic(config.synthetic, workers=max(1, config.num_workers))
        return RadioMapSeerDataset(root, split, protocol="leakfree", map_size=config.synthetic.size, **shared)
    if config.source == "radiomapseer":
        return RadioMapSeerDataset(
            _require_root(config), split, simulation=config.simulation, protocol=config.protocol, **shared
        )
    if config.source == "datasets":
        return HuggingFaceMapDataset(_require_root(config), split, image_column=config.image_column, **shared)
    raise ValueError(f"data.source {config.source!r}: expected synthetic, radiomapseer or datasets")
