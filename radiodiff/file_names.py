"""The names of the files the package writes and reads back, each defined once: a model folder's (diffusers'
names), a run's output folder's, a checkpoint's and an encoded-latents folder's.

Plain strings, no diffusers import: ``radiodiff report`` reads sample names and must start fast.
"""

from __future__ import annotations

import re
from pathlib import Path

# a model folder, as diffusers' save_pretrained writes it
CONFIG_FILE = "config.json"
PIPELINE_INDEX_FILE = "model_index.json"
WEIGHTS_FILE = "diffusion_pytorch_model.safetensors"
EMA_VARIANT = "ema"


def weights_file(variant: str | None = None) -> str:
    """The safetensors file of ``variant``'s weights (``None``: the plain ones), as diffusers names it."""
    return WEIGHTS_FILE.replace(".safetensors", f".{variant}.safetensors") if variant else WEIGHTS_FILE


EMA_WEIGHTS_FILE = weights_file(EMA_VARIANT)

# a run's output folder
RUN_CONFIG_FILE = "config.yaml"
TRAINING_SUMMARY_FILE = "training_summary.json"
METRICS_FILE = "metrics.json"
PER_IMAGE_CSV = "per_image.csv"
# a model's (or a data set's) card, the page the Hub shows
CARD_FILE = "README.md"
SAMPLE_NAME = re.compile(r"sample-(\d+)\.png")

# a checkpoint, beside what accelerate's save_state writes
STATE_FILE = "trainer_state.json"
TENSORS_FILE = "trainer_tensors.safetensors"

# an encoded-latents folder
LATENTS_INFO = "latents.json"


def sample_file_name(milestone: int) -> str:
    """The name of the sample sheet of ``milestone`` (the trainer's ``samples/`` folder)."""
    return f"sample-{milestone}.png"


def find_samples(folders: list[Path]) -> list[tuple[int, Path]]:
    """``(milestone, path)`` of the ``sample-<milestone>.png`` files in ``folders``, in milestone order; a
    milestone found in several folders is taken from the first."""
    found: dict[int, Path] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            match = SAMPLE_NAME.fullmatch(path.name)
            if match:
                found.setdefault(int(match.group(1)), path)
    return sorted(found.items())
