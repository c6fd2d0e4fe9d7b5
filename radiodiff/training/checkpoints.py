"""Checkpoints: written atomically, found again by ``--resume latest``, pruned to the last K.

A checkpoint is ``output_dir/checkpoints/checkpoint-<step>/``: what a stage trains (its :class:`TrainedParts`:
the models and optimizers in accelerate's files, the EMA weights as a ``save_pretrained`` folder, the tensors
trained outside the models in ``trainer_tensors.safetensors``), the global RNG (accelerate's) and the run's own
generator (``generator_<rank>.safetensors``) per process, and ``trainer_state.json``: the loop's
:class:`TrainerState` and a manifest of what each file holds (:func:`checkpoint_manifest`). accelerate names its
files by position (``model.safetensors``, ``model_1.safetensors``, ``optimizer.bin``, ...); the manifest names
the model or optimizer each one is, and a resume checks it against the run's parts before it reads anything.
A checkpoint without a manifest (written before radiodiff recorded one) is read in the order of the run's parts,
the order those versions wrote.

Nothing in it is a pickle that is loaded unrestricted: accelerate reads its optimizer, scheduler and RNG files
with ``torch.load(weights_only=True)``; the rest is safetensors and JSON. Everything is written into
``.tmp-checkpoint-<step>`` first and renamed into place only when complete, so a crash, a kill or a full disk never
leaves a half-written checkpoint that looks valid, and the previous one stays usable.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pickle
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch
from accelerate import Accelerator
from accelerate.utils.constants import OPTIMIZER_NAME, RNG_STATE_NAME, SAFE_WEIGHTS_NAME, SCALER_NAME
from diffusers.configuration_utils import ConfigMixin
from diffusers.training_utils import EMAModel
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..file_names import CONFIG_FILE, STATE_FILE, TENSORS_FILE, WEIGHTS_FILE

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
EMA_FOLDER = "ema"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be written or read."""


@dataclass
class TrainedOptimizer:
    """A prepared optimizer, the name of the model whose parameters it updates, and its base learning rate."""

    optimizer: torch.optim.Optimizer
    model: str
    base_lr: float


@dataclass
class TrainedParts:
    """Everything a stage trains, by name: what its checkpoints hold besides the loop's state and the RNG.

    Args:
        models: the prepared models (DDP-wrapped under several processes), in the order accelerate prepared and
            saves them: the first is ``model.safetensors``, the second ``model_1.safetensors``, ...
        optimizers: the prepared optimizers, in accelerate's order likewise (``optimizer.bin``, ``optimizer_1.bin``).
        ema: the EMA of the stage's main model (``ema/``), or None.
        extra_trained_tensors: trained tensors outside the models (``trainer_tensors.safetensors``), e.g. the VAE
            loss's learned log-variance ``loss.logvar``.
    """

    models: dict[str, torch.nn.Module]
    optimizers: dict[str, TrainedOptimizer]
    ema: EMAModel | None = None
    extra_trained_tensors: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class TrainerState:
    """What the loop needs besides model, optimizer, scheduler and RNG state to continue exactly."""

    step: int = 0
    skipped_steps: int = 0
    consecutive_nonfinite: int = 0
    wall_time_s: float = 0.0
    # the step of the newest checkpoint this run wrote or resumed from: the same on every rank, unlike a
    # directory listing (node-local disks, a stale NFS view), so collective decisions can rest on it
    last_checkpoint_step: int | None = None
    # the precision the run trained in (accelerate's ``no``/``fp16``/``bf16``), stamped when a checkpoint is written,
    # so that a resumed ``auto`` keeps it; None in checkpoints from before it was recorded
    mixed_precision: str | None = None
    # the manifest: what each file of the checkpoint holds (:func:`checkpoint_manifest`), stamped when a checkpoint
    # is written; None in checkpoints from before it was recorded
    files: dict[str, dict[str, Any]] | None = None

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_file(cls, path: Path) -> "TrainerState":
        try:
            state = cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as error:
            raise CheckpointError(f"{path}: not a readable trainer state ({error})") from error
        files = state.files
        if files is not None and not (
            isinstance(files, dict) and all(isinstance(entry, dict) and "kind" in entry for entry in files.values())
        ):
            raise CheckpointError(f"{path}: files: expected the manifest, a file name -> {{\"kind\": ...}} mapping")
        return state


def checkpoints_root(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def list_checkpoints(output_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints, oldest first. Temporary and incomplete folders are ignored."""
    root = checkpoints_root(output_dir)
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = CHECKPOINT_PATTERN.match(path.name)
        if match and (path / STATE_FILE).is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def newest_checkpoint_note(output_dir: str | Path) -> str:
    """What a failed run leaves to resume from, for its error message."""
    checkpoints = list_checkpoints(output_dir)
    if not checkpoints:
        return "no checkpoint was written yet"
    return f"the newest complete checkpoint, {checkpoints[-1][1]}, is intact (continue with --resume latest)"


def resolve_resume(output_dir: str | Path, resume: str | None) -> Path | None:
    """The checkpoint folder that ``--resume`` names: ``latest`` (None if there is none yet) or a path."""
    if resume is None:
        return None
    if resume == "latest":
        checkpoints = list_checkpoints(output_dir)
        return checkpoints[-1][1] if checkpoints else None
    path = Path(resume)
    if not (path / STATE_FILE).is_file():
        raise CheckpointError(f"--resume {resume}: not a complete checkpoint folder (no {STATE_FILE} in it)")
    return path


def generator_file(rank: int) -> str:
    return f"generator_{rank}.safetensors"


def _model_file(index: int) -> str:
    """The file accelerate's ``save_state`` writes the ``index``-th prepared model to."""
    return SAFE_WEIGHTS_NAME if index == 0 else SAFE_WEIGHTS_NAME.replace(".", f"_{index}.")


def _optimizer_file(index: int) -> str:
    """The file accelerate's ``save_state`` writes the ``index``-th prepared optimizer to."""
    return f"{OPTIMIZER_NAME}.bin" if index == 0 else f"{OPTIMIZER_NAME}_{index}.bin"


def _model_entry(name: str, model: torch.nn.Module) -> dict[str, Any]:
    entry = {"kind": "model", "name": name, "class": type(model).__name__}
    if isinstance(model, ConfigMixin):
        # what the weights are for (channels, sizes), readable without opening them
        config = json.loads(model.to_json_string())
        entry["config"] = {key: value for key, value in config.items() if not key.startswith("_")}
    return entry


def checkpoint_manifest(accelerator: Accelerator, parts: TrainedParts) -> dict[str, dict[str, Any]]:
    """What each file of a checkpoint of ``parts`` holds, by file name (a folder's name ends with ``/``).

    Each entry has a ``kind``: ``model`` (with its ``name``, ``class`` and diffusers ``config``), ``optimizer``
    (its ``name``, ``class`` and the model it ``updates``), ``ema`` (the ``class`` it averages), ``extra trained
    tensors`` (their ``names``), ``gradient scaler``, ``random states`` and ``training generator`` (of a
    ``process``), ``trainer state``.
    """
    files = {
        _model_file(index): _model_entry(name, accelerator.unwrap_model(model))
        for index, (name, model) in enumerate(parts.models.items())
    }
    for index, (name, trained) in enumerate(parts.optimizers.items()):
        optimizer = getattr(trained.optimizer, "optimizer", trained.optimizer)  # accelerate's wrapper holds it
        files[_optimizer_file(index)] = {
            "kind": "optimizer", "name": name, "class": type(optimizer).__name__, "updates": trained.model
        }
    if accelerator.scaler is not None:
        files[SCALER_NAME] = {"kind": "gradient scaler"}
    for rank in range(accelerator.num_processes):
        files[f"{RNG_STATE_NAME}_{rank}.pkl"] = {"kind": "random states", "process": rank}
        files[generator_file(rank)] = {"kind": "training generator", "process": rank}
    if parts.extra_trained_tensors:
        files[TENSORS_FILE] = {"kind": "extra trained tensors", "names": sorted(parts.extra_trained_tensors)}
    if parts.ema is not None:
        files[f"{EMA_FOLDER}/"] = {"kind": "ema", "class": parts.ema.model_cls.__name__}
    files[STATE_FILE] = {"kind": "trainer state"}
    return files


# what a resume compares: the files that hold what the run trains, and what each of them is
TRAINED_KINDS = ("model", "optimizer", "ema", "extra trained tensors")
IDENTITY_KEYS = ("kind", "name", "class", "updates", "names")


def _trained_files(files: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: entry for name, entry in files.items() if entry["kind"] in TRAINED_KINDS}


def _describe(entry: dict[str, Any]) -> str:
    if entry["kind"] == "ema":
        return f"the EMA of a {entry.get('class')}"
    if entry["kind"] == "extra trained tensors":
        return f"the extra trained tensors {', '.join(map(str, entry.get('names') or []))}"
    return f"the {entry['kind']} {entry.get('name')} ({entry.get('class')})"


def stored_model_config(path: Path, name: str) -> dict[str, Any] | None:
    """The config of the model ``name`` as the manifest of the checkpoint at ``path`` records it; None when the
    checkpoint has no manifest or no such model."""
    files = TrainerState.from_file(path / STATE_FILE).files or {}
    models = [entry for entry in files.values() if entry["kind"] == "model" and entry.get("name") == name]
    return models[0].get("config") if models else None


def check_manifest(path: Path, stored: dict[str, dict[str, Any]], expected: dict[str, dict[str, Any]]) -> None:
    """Refuse a checkpoint whose files hold other models, optimizers, EMA or extra tensors than the run trains.

    ``stored`` is the checkpoint's manifest, ``expected`` the run's (:func:`checkpoint_manifest`). Without this,
    accelerate would load the files by position: a checkpoint of another stage, or of a run with another optimizer
    or with(out) an EMA, would fail deep in torch or, worse, load.
    """
    stored, expected = _trained_files(stored), _trained_files(expected)
    kinds = {file: entry["kind"] for file, entry in {**stored, **expected}.items()}
    # the models first: a checkpoint of another stage is named by its first model, not by its EMA
    for file in sorted(kinds, key=lambda file: (TRAINED_KINDS.index(kinds[file]), file)):
        if file not in expected:
            problem = f"its {file} holds {_describe(stored[file])}, which this run does not train"
        elif file not in stored:
            problem = f"it holds no {file}, where this run keeps {_describe(expected[file])}"
        elif any(stored[file].get(key) != expected[file].get(key) for key in IDENTITY_KEYS):
            problem = f"its {file} holds {_describe(stored[file])}, where this run keeps {_describe(expected[file])}"
        else:
            continue
        raise CheckpointError(
            f"{path}: {problem}; expected a checkpoint of this stage with the same models, optimizers, EMA and "
            f"loss settings (see the manifest in its {STATE_FILE})"
        )


def run_generator(seed: int, rank: int, device: torch.device) -> torch.Generator:
    """The generator every random draw of the training step uses; one stream per process (``seed + rank``).

    Apart from the global RNG, so that checkpoints, sample sheets and evaluations, which draw from the global
    RNG (or advance it inside libraries), never shift the training noise; checkpointed with the run.
    """
    return torch.Generator(device=device).manual_seed(seed + rank)


def check_output_dir(
    output_dir: str | Path, resume: str | None, overwrite: bool, is_main_process: bool, exported: tuple[str, ...]
) -> None:
    """Refuse a fresh run into a folder that holds another run's checkpoints, unless ``overwrite``.

    A fresh run there would prune the earlier run's checkpoints (or its own), replace its export, and a later
    ``--resume latest`` could continue the wrong run. With ``overwrite``, the main process deletes the earlier
    run's checkpoints, its ``exported`` model folders, its sample sheets and the ``evaluation/`` results of its
    models (``radiodiff evaluate``'s default output: they would stand beside the new run as if they were its own)
    before anything is written.
    """
    output_dir = Path(output_dir)
    if resume is not None:
        if overwrite:
            raise CheckpointError("--resume and --overwrite contradict each other: choose one")
        return
    if overwrite:
        if is_main_process:
            for earlier in ("checkpoints", *exported, "samples", "evaluation"):
                shutil.rmtree(output_dir / earlier, ignore_errors=True)
        return
    checkpoints = list_checkpoints(output_dir)
    if checkpoints:
        steps = ", ".join(str(step) for step, _ in checkpoints)
        raise CheckpointError(
            f"{output_dir} already holds checkpoints of an earlier run (steps {steps}); continue it with "
            f"--resume latest, or start afresh with --overwrite (deletes them and the exported models)"
        )


def set_aside_newer_checkpoints(output_dir: str | Path, resume_path: Path) -> Path | None:
    """Move this folder's checkpoints of steps after ``resume_path``'s into ``checkpoints/abandoned-<step>-<time>/``.

    Resuming from an earlier checkpoint starts a new branch of the run; the later checkpoints of the branch it leaves
    would otherwise stay the newest, so a later ``--resume latest`` would continue the abandoned branch (and pruning
    would never reach them). They are kept, not deleted, outside what ``--resume latest`` and pruning look at.
    Returns the folder they were moved to, or None when there were none.
    """
    step = TrainerState.from_file(resume_path / STATE_FILE).step
    newer = [(later, path) for later, path in list_checkpoints(output_dir) if later > step]
    if not newer:
        return None
    aside = checkpoints_root(output_dir) / f"abandoned-{step}-{time.strftime('%Y%m%d-%H%M%S')}"
    aside.mkdir()
    for _, path in newer:
        os.replace(path, aside / path.name)
    print(
        f"resuming from step {step}: the checkpoints of later steps ({', '.join(str(s) for s, _ in newer)}) belong "
        f"to the branch this resume leaves; moved to {aside}, so that --resume latest continues this one"
    )
    return aside


def _fsync_tree(root: Path) -> None:
    """Flush every file and folder under ``root`` to disk, so that a rename never publishes unwritten data."""
    for path in sorted(root.rglob("*"), reverse=True) + [root]:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _replace_directory(source: Path, target: Path) -> None:
    """Move ``source`` to ``target``, replacing an existing ``target`` with no moment where neither exists.

    ``source`` is flushed first, so that even a power cut leaves either the old or the complete new folder.
    """
    _fsync_tree(source)
    if target.exists():
        stale = target.with_name(f".old-{target.name}")
        shutil.rmtree(stale, ignore_errors=True)
        os.replace(target, stale)
        os.replace(source, target)
        shutil.rmtree(stale, ignore_errors=True)
    else:
        os.replace(source, target)
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


@contextlib.contextmanager
def staged_directory(target: Path) -> Iterator[Path]:
    """A folder to write ``target``'s new content into; it replaces ``target`` only if the block completes.

    If the block raises (a full disk) or the process is killed, ``target`` keeps its earlier content.
    """
    staging = target.with_name(f".tmp-{target.name}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _replace_directory(staging, target)


def error_summary(error: BaseException, lines: int = 2) -> str:
    """The first lines of an error: torch lists every mismatching tensor, which buries the point."""
    text = str(error).strip().splitlines()
    more = f" ... ({len(text) - lines} more lines)" if len(text) > lines else ""
    return " ".join(line.strip() for line in text[:lines]) + more


def save_checkpoint(
    accelerator: Accelerator,
    output_dir: str | Path,
    state: TrainerState,
    generator: torch.Generator,
    parts: TrainedParts,
    keep_last: int | None,
) -> Path:
    """Write the full training state for ``state.step``; every process must call this.

    ``generator`` is this process's :func:`run_generator`; ``parts`` what the stage trains (its extra tensors are
    the same on every process).
    """
    root = checkpoints_root(output_dir)
    final = root / f"checkpoint-{state.step}"
    staging = root / f".tmp-checkpoint-{state.step}"
    if accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    accelerator.wait_for_everyone()
    try:
        accelerator.save_state(str(staging))
        save_file({"state": generator.get_state()}, staging / generator_file(accelerator.process_index))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            if parts.extra_trained_tensors:
                stored = {name: tensor.detach().cpu().contiguous() for name, tensor in parts.extra_trained_tensors.items()}
                save_file(stored, staging / TENSORS_FILE)
            if parts.ema is not None:
                parts.ema.save_pretrained(str(staging / EMA_FOLDER))
            # written last: its presence marks the checkpoint as complete
            written = dataclasses.replace(
                state,
                last_checkpoint_step=state.step,
                mixed_precision=accelerator.mixed_precision,
                files=checkpoint_manifest(accelerator, parts),
            )
            (staging / STATE_FILE).write_text(written.to_json())
    except OSError as error:
        if accelerator.is_main_process:
            shutil.rmtree(staging, ignore_errors=True)
        raise CheckpointError(
            f"could not write the checkpoint for step {state.step} to {final}: {error}; "
            f"{newest_checkpoint_note(output_dir)}"
        ) from error
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        _replace_directory(staging, final)
        if keep_last is not None:
            # only checkpoints up to this one: a newer step in the folder is not older than this run's state
            earlier = [path for step, path in list_checkpoints(output_dir) if step <= state.step]
            for stale in earlier[:-keep_last]:
                shutil.rmtree(stale, ignore_errors=True)
    accelerator.wait_for_everyone()
    state.last_checkpoint_step = state.step
    return final


def _load_ema(ema: EMAModel, ema_path: Path) -> None:
    """Restore what ``EMAModel.save_pretrained`` wrote: the averaged weights, and the EMA's own state (decay,
    step count) stored among the model's config keys. Read directly rather than with ``EMAModel.from_pretrained``,
    which warns on every resume about those extra config keys and about passing a path to ``from_config``."""
    stored_config = json.loads((ema_path / CONFIG_FILE).read_text())
    averaged = ema.model_cls.from_config(ema.model_config)
    averaged.load_state_dict(load_file(ema_path / WEIGHTS_FILE))
    state = {key: stored_config[key] for key in ema.state_dict() if key in stored_config}
    ema.load_state_dict({**state, "shadow_params": [parameter.detach() for parameter in averaged.parameters()]})


def load_checkpoint(
    accelerator: Accelerator,
    path: Path,
    generator: torch.Generator,
    parts: TrainedParts,
) -> TrainerState:
    """Restore ``parts`` (in place), the RNG and ``generator`` from ``path``, once its manifest matches ``parts``.

    Returns the loop's state.
    """
    state = TrainerState.from_file(path / STATE_FILE)
    state.last_checkpoint_step = state.step
    if state.files is not None:
        check_manifest(path, state.files, checkpoint_manifest(accelerator, parts))
    generator_path = path / generator_file(accelerator.process_index)
    if not generator_path.is_file():
        raise CheckpointError(
            f"{path}: no {generator_path.name}, the training generator of process {accelerator.process_index}; "
            f"the checkpoint was written by another number of processes or an earlier radiodiff version"
        )
    try:
        accelerator.load_state(str(path))
        generator.set_state(load_file(generator_path)["state"])
        if parts.extra_trained_tensors:
            stored = load_file(path / TENSORS_FILE)
            with torch.no_grad():
                for name, tensor in parts.extra_trained_tensors.items():
                    tensor.copy_(stored[name])
    except (SafetensorError, EOFError, pickle.UnpicklingError) as error:
        raise CheckpointError(
            f"{path}: a file of the checkpoint is truncated or not in the expected format ({error_summary(error)})"
        ) from error
    except (OSError, RuntimeError, KeyError, ValueError) as error:
        raise CheckpointError(
            f"{path}: could not restore the training state ({error_summary(error)}). Was it written by a run with "
            "another model, discriminator or optimizer configuration?"
        ) from error
    if parts.ema is not None:
        ema_path = path / EMA_FOLDER
        if not ema_path.is_dir():
            raise CheckpointError(f"{path}: train.use_ema is on but the checkpoint holds no {EMA_FOLDER}/ folder")
        try:
            _load_ema(parts.ema, ema_path)
        except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as error:
            raise CheckpointError(f"{ema_path}: the EMA weights cannot be read ({error_summary(error)})") from error
        parts.ema.to(accelerator.device)
    return state
