"""Which of radiodiff's pipelines a saved folder holds, read from its ``model_index.json`` (not shipped in folders)."""

from __future__ import annotations

import json
from pathlib import Path

from diffusers import DiffusionPipeline

from ..file_names import PIPELINE_INDEX_FILE
from .pipeline_radiodiff import RadioDiffPipeline
from .pipeline_radiounet import RadioUNetPipeline

PIPELINE_CLASSES = {cls.__name__: cls for cls in (RadioDiffPipeline, RadioUNetPipeline)}


def saved_pipeline_class(pipeline_dir: str | Path) -> type[DiffusionPipeline]:
    """The class of radiodiff's pipelines that ``model_index.json``'s ``_class_name`` names (a folder saved with its
    code names ``[file, class]``); the package's class, never the folder's code. A ``ValueError`` for another class."""
    index_path = Path(pipeline_dir) / PIPELINE_INDEX_FILE
    name = json.loads(index_path.read_text()).get("_class_name")
    name = name[-1] if isinstance(name, list) else name
    if name not in PIPELINE_CLASSES:
        raise ValueError(
            f"{index_path}: a {name} pipeline; expected one of radiodiff's ({', '.join(sorted(PIPELINE_CLASSES))})"
        )
    return PIPELINE_CLASSES[name]
