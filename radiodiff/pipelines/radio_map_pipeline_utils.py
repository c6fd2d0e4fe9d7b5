"""What the radio-map pipelines share: reading building and transmitter maps, and folders that carry their code.

This file ships verbatim beside the pipeline file (``pipeline_radiodiff.py``, ``pipeline_radiounet.py``) in every saved
pipeline folder, which imports it; diffusers copies it with the pipeline file when it loads the folder's code. It
therefore imports only torch, diffusers, numpy, PIL and the standard library, and nothing of its package.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import PIL.Image
import torch
from diffusers import DiffusionPipeline
from diffusers.pipelines.pipeline_loading_utils import LOADABLE_CLASSES
from diffusers.utils import DIFFUSERS_DYNAMIC_MODULE_NAME, logging
from diffusers.utils.dynamic_modules_utils import get_relative_imports

logger = logging.get_logger(__name__)

MapInput = torch.Tensor | np.ndarray | PIL.Image.Image | Sequence[Any]


def rasterize_transmitter(x: int, y: int, height: int, width: int) -> torch.Tensor:
    """A (1, height, width) transmitter map lit at column ``x``, row ``y`` (image coordinates, from the top left)."""
    if not (0 <= x < width and 0 <= y < height):
        raise ValueError(f"transmitter (x={x}, y={y}): outside the {width}x{height} map")
    transmitter = torch.zeros(1, height, width)
    transmitter[0, y, x] = 1.0
    return transmitter


def _is_coordinate(value: Any) -> bool:
    return (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
    )


def _is_channel_last(array: np.ndarray) -> bool:
    """(H, W, 1) or (B, H, W, 1), as ``output_type="np"`` returns maps: a last axis of one channel after a map."""
    return array.ndim in (3, 4) and array.shape[-1] == 1 and array.shape[-3] != 1


def _one_map(value: Any, name: str) -> torch.Tensor:
    """One map or a batch of maps as float32 (B, 1, H, W); 8-bit and boolean maps are taken to [0, 1]."""
    if isinstance(value, PIL.Image.Image):
        if value.mode not in ("L", "1"):
            raise ValueError(f"{name}: a PIL image of mode {value.mode}; expected a 1-channel image (mode L or 1)")
        value = np.array(value)
    if isinstance(value, np.ndarray):
        if _is_channel_last(value):
            value = np.moveaxis(value, -1, -3)
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name}: got {type(value).__name__}; expected a tensor, a numpy array, a PIL image or a list")
    if value.dtype == torch.uint8:
        value = value.float() / 255.0
    value = value.float()
    if value.ndim == 2:
        value = value[None, None]
    elif value.ndim == 3:
        value = value[None]
    if value.ndim != 4 or value.shape[1] != 1:
        raise ValueError(
            f"{name}: shape {tuple(value.shape)}; expected one channel, (H, W), (1, H, W) or (B, 1, H, W) "
            "(numpy arrays also (H, W, 1) or (B, H, W, 1))"
        )
    return value


def _as_maps(value: MapInput, name: str) -> torch.Tensor:
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError(f"{name}: an empty list; expected at least one map")
        return torch.cat([_one_map(item, f"{name}[{i}]") for i, item in enumerate(value)])
    return _one_map(value, name)


def prepare_conditions(
    buildings: MapInput,
    transmitter: MapInput | tuple[int, int] | Sequence[tuple[int, int]],
    size: int,
    size_source: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The conditions as checked float32 (B, 1, H, W) tensors on [0, 1], for a pipeline of ``size`` x ``size`` maps.

    ``transmitter`` is a map with one lit pixel per map, or ``(x, y)`` pixel coordinates (one pair per map);
    ``size_source`` says where the size comes from (``"the pipeline's map size"``), for the error message.
    """
    buildings = _as_maps(buildings, "buildings")
    if tuple(buildings.shape[-2:]) != (size, size):
        raise ValueError(
            f"buildings: maps of {buildings.shape[-2]}x{buildings.shape[-1]}; expected {size}x{size}, {size_source}"
        )
    if buildings.min() < 0 or buildings.max() > 1:
        raise ValueError(
            f"buildings: values in [{buildings.min():g}, {buildings.max():g}]; expected [0, 1] (or an 8-bit image)"
        )
    if _is_coordinate(transmitter):
        transmitter = [transmitter]
    if isinstance(transmitter, (list, tuple)) and transmitter and all(map(_is_coordinate, transmitter)):
        transmitter = [rasterize_transmitter(int(x), int(y), size, size) for x, y in transmitter]
    transmitter = _as_maps(transmitter, "transmitter")
    if transmitter.shape[-2:] != buildings.shape[-2:]:
        raise ValueError(
            f"transmitter: maps of {transmitter.shape[-2]}x{transmitter.shape[-1]}; expected {size}x{size} "
            "like the buildings"
        )
    if transmitter.shape[0] != buildings.shape[0]:
        raise ValueError(
            f"batch mismatch: {buildings.shape[0]} building maps and {transmitter.shape[0]} transmitter maps"
        )
    lit = (transmitter != 0).flatten(1).sum(dim=1)
    for index, count in enumerate(lit.tolist()):
        if count != 1:
            raise ValueError(f"transmitter: map {index} has {count} lit pixels; expected exactly one")
    _warn_of_transmitters_on_buildings(buildings, transmitter)
    return buildings, transmitter


def _warn_of_transmitters_on_buildings(buildings: torch.Tensor, transmitter: torch.Tensor) -> None:
    # not refused: a map is still generated, but the training data has its transmitters in the streets
    for index, (building_map, transmitter_map) in enumerate(zip(buildings, transmitter)):
        y, x = (int(v) for v in transmitter_map[0].nonzero()[0])
        if building_map[0, y, x] >= 0.5:
            logger.warning(
                f"transmitter: map {index} has its transmitter at (x={x}, y={y}), a building pixel; the model "
                "was trained on transmitters in free space"
            )


class ShippedCodeMixin:
    """``save_pretrained``, ``load_config`` and ``from_pretrained`` for a pipeline whose folder carries its code.

    Put it before ``DiffusionPipeline`` among the bases: its methods extend diffusers' own.
    """

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> None:
        """diffusers' folder, plus the code that loads it with diffusers alone.

        The pipeline's module (``pipeline_radiodiff.py``) and the modules it imports (this one) go to the folder's
        root and ``model_index.json``'s ``_class_name`` becomes ``["pipeline_radiodiff", "RadioDiffPipeline"]``;
        each component that is not a diffusers class and
        whose module runs on its own (the condition encoder, RadioDiff's scheduler) gets its module file in its
        folder, named in ``model_index.json`` as ``[file stem, class]``: ``condition_encoder/condition_encoder.py``,
        ``scheduler/scheduling_radiodiff.py``. Re-saving a folder saved without its code adds the code.
        """
        super().save_pretrained(save_directory, **kwargs)
        folder = Path(save_directory)
        index = json.loads((folder / self.config_name).read_text())
        index["_class_name"] = [_ship_module_of(type(self), folder), type(self).__name__]
        for name in self.components:
            component = getattr(self, name)
            if index.get(name, [None])[0] not in (None, *LOADABLE_CLASSES) and _runs_on_its_own(type(component)):
                index[name] = [_ship_module_of(type(component), folder / name), type(component).__name__]
        (folder / self.config_name).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")

    @classmethod
    def load_config(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> Any:
        """``model_index.json``, its shipped code resolved to the installed package when this class is one's.

        In a process that imported this class from a package (``radiodiff``), the entries naming a folder's code
        (``["pipeline_radiodiff", "RadioDiffPipeline"]``, ``["condition_encoder", "RadioMapConditionEncoder"]``)
        and the module paths older folders recorded (``["radiodiff.models.condition_encoder", ...]``) name the
        package's own classes, so that the folder's code is never run and ``trust_remote_code`` is not needed; a
        folder of another pipeline class is refused. A class loaded from a folder's code leaves the entries to
        diffusers.
        """
        loaded = super().load_config(pretrained_model_name_or_path, **kwargs)
        package_name = cls.__module__.partition(".")[0]
        if package_name == DIFFUSERS_DYNAMIC_MODULE_NAME:
            return loaded
        package = importlib.import_module(package_name)
        config = loaded[0] if isinstance(loaded, tuple) else loaded
        folder_class = config.get("_class_name")
        folder_class = folder_class[1] if isinstance(folder_class, list) else folder_class
        if folder_class not in (None, cls.__name__):
            raise ValueError(
                f"{pretrained_model_name_or_path}: a {folder_class} folder; expected a {cls.__name__} folder"
            )
        config["_class_name"] = cls.__name__
        for name, entry in config.items():
            is_component = isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], str)
            if is_component and entry[0] not in (None, *LOADABLE_CLASSES) and hasattr(package, entry[1]):
                # the defining module: diffusers finds the loading base class (ModelMixin, ...) in its namespace
                config[name] = [getattr(package, entry[1]).__module__, entry[1]]
        return loaded

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> DiffusionPipeline:
        """A saved folder or a Hub repository, with this class and this package's component classes.

        With diffusers alone, load a folder that carries its code with
        ``DiffusionPipeline.from_pretrained(folder_or_repo, trust_remote_code=True)``.
        """
        package_class = cls.__module__.partition(".")[0] != DIFFUSERS_DYNAMIC_MODULE_NAME
        if package_class and not os.path.isdir(pretrained_model_name_or_path):
            # diffusers' download would import the repository's pipeline file: fetch the weights and configs only
            from huggingface_hub import snapshot_download

            hub_options = ("cache_dir", "revision", "token", "local_files_only", "force_download", "proxies")
            pretrained_model_name_or_path = snapshot_download(
                str(pretrained_model_name_or_path),
                allow_patterns=["*.json", "*/*.json", "*/*.safetensors"],
                **{key: kwargs[key] for key in hub_options if key in kwargs},
            )
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)


def check_num_inference_steps(value: Any, name: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name}: {value!r}; expected an integer >= 1")


def _runs_on_its_own(component_class: type) -> bool:
    """Whether the module of ``component_class`` imports none of its package's other modules (relative imports
    that a folder would have to carry too)."""
    return not get_relative_imports(inspect.getsourcefile(component_class))


def _ship_module_of(defined_class: type, folder: Path) -> str:
    """Copy the module file that defines ``defined_class`` into ``folder``, with the modules beside it that it
    imports (diffusers copies those along when it loads the folder's code); returns its stem, as
    ``model_index.json`` names it."""
    source = Path(inspect.getsourcefile(defined_class))
    for module_file in [source, *(source.parent / f"{name}.py" for name in get_relative_imports(source))]:
        shutil.copyfile(module_file, folder / module_file.name)
    return source.stem
