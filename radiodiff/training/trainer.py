"""The training loop both stages share: accelerate, data order, the step loop, logs, samples, checkpoints, export.

A stage is a :class:`Trainer` subclass that fills in the hooks marked *stage hook* below. Its contract with the
loop is one method, :meth:`Trainer.build_trained_parts`, which builds what the stage trains and returns it as a
:class:`~.checkpoints.TrainedParts`:

- ``models``: the prepared models by name (the first stage's ``vae`` and ``discriminator``, the second stage's
  ``denoiser``);
- ``optimizers``: the prepared optimizers by name (``vae.adamw``, ``vae.muon``, ``discriminator.adamw``,
  ``denoiser.adamw``, ...), each a :class:`~.checkpoints.TrainedOptimizer` with the model it updates and its base
  learning rate;
- ``ema``: the EMA of the stage's main model, or None;
- ``extra_trained_tensors``: trained tensors outside the models (the first stage's learned log-variance
  ``loss.logvar``).

The stage prepares its models and optimizers with :meth:`Trainer.prepare`, whose order is the order of
accelerate's checkpoint files. The base class stores the bundle as ``self.parts`` and drives everything from it:
learning rates, discarded gradients, the EMA update and checkpoints (whose ``trainer_state.json`` carries a
manifest of what each file holds, checked on resume). The stage adds :meth:`Trainer.train_step` (one optimizer
step), what its log lines and sample sheets show, and what it exports. Everything else — exact resume, the run's
own generator, the stop path, the refusal of a used ``output_dir``, non-finite steps, staged export,
``training_summary.json`` and trackers — is written once here. :func:`run_training` runs a stage from a config;
``vae_trainer.train`` and ``ldm_trainer.train_ldm`` are the two stages' entries. This package is the only place
that knows accelerate.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import signal
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from accelerate import Accelerator
from accelerate.utils import InitProcessGroupKwargs, KwargsHandler, ProjectConfiguration, set_seed
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..config import TrainConfig, save_config
from ..data import prepare_data
from ..evaluation import evaluate_pipeline, format_pipeline_summary, write_pipeline_metrics
from ..evaluation.pipeline import load_pipeline
from ..file_names import RUN_CONFIG_FILE, TRAINING_SUMMARY_FILE, sample_file_name
from ..file_writing import write_atomically
from ..hub import push_to_hub
from .checkpoints import (
    STATE_FILE,
    TrainedOptimizer,
    TrainedParts,
    TrainerState,
    check_output_dir,
    list_checkpoints,
    load_checkpoint,
    newest_checkpoint_note,
    resolve_resume,
    run_generator,
    save_checkpoint,
    set_aside_newer_checkpoints,
)
from .runlog import RunLog
from .samples import save_generation_sheet
from .schedule import ResumableShuffleSampler, learning_rate


class TrainingError(RuntimeError):
    """The run cannot go on; the message says why and what was kept."""


def trained_optimizers(
    model: str, optimizers: list[torch.optim.Optimizer], base_lr: float
) -> dict[str, TrainedOptimizer]:
    """``model``'s optimizers (from :func:`.optim.build_optimizers`) by name, ``<model>.<optimizer class>``."""
    return {
        f"{model}.{type(optimizer).__name__.lower()}": TrainedOptimizer(optimizer, model, base_lr)
        for optimizer in optimizers
    }


def parameters_are_finite(module: torch.nn.Module) -> bool:
    # one host sync for the whole model, not one per tensor
    return bool(torch.stack([torch.isfinite(p).all() for p in module.parameters()]).all())


class StopRequest:
    """Turns SIGINT/SIGTERM into a request to checkpoint and stop at the end of the current step."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopRequest":
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class Trainer:
    """The loop and its bookkeeping; a stage subclasses it (see the module's docstring).

    ``__init__`` sets up the run's generator, data order and log, then calls the stage's
    :meth:`build_trained_parts` and keeps its bundle as ``self.parts``.
    """

    # the tracker's project name, and the folders a run exports (what ``--overwrite`` deletes besides
    # ``checkpoints/`` and ``samples/``)
    tracker_project = "radiodiff"
    exported_folders: tuple[str, ...] = ()

    def __init__(self, config: Any, accelerator: Accelerator, train_set: Dataset, val_set: Dataset):
        self.config = config
        self.accelerator = accelerator
        self.train_set, self.val_set = train_set, val_set
        self.output_dir = Path(config.output_dir)
        train = config.train
        device = accelerator.device
        # every random draw of a training step comes from here, never from the global RNG, so that checkpoints,
        # samples and evaluations (which draw from the global RNG, or advance it inside libraries) never shift it
        self.generator = run_generator(train.seed, accelerator.process_index, device)
        self.sampler = ResumableShuffleSampler(
            len(train_set), train.batch_size, train.seed, accelerator.num_processes, accelerator.process_index
        )
        self.loader = DataLoader(
            train_set,
            batch_size=train.batch_size,
            sampler=self.sampler,
            num_workers=config.data.num_workers,
            drop_last=True,
            pin_memory=device.type == "cuda",
            persistent_workers=config.data.num_workers > 0,
            # worker seeds from the run's seed and rank, not the global RNG; reading a map draws no random numbers,
            # so the batches depend only on the sampler's (seed, epoch) order, however the run was resumed
            generator=torch.Generator().manual_seed(train.seed + accelerator.process_index),
        )
        self.state = TrainerState()
        self.runlog = RunLog(self.output_dir / "logs", config.to_dict(), enabled=accelerator.is_main_process)
        self.parts = self.build_trained_parts()

    # ---- stage hooks ------------------------------------------------------------------------------------------

    def build_trained_parts(self) -> TrainedParts:
        """Build, :meth:`prepare` and return what the stage trains (see the module's docstring); the stage may keep
        its own handles on them (unwrapped modules, its loss) as attributes."""
        raise NotImplementedError

    def trained_modules(self) -> dict[str, torch.nn.Module]:
        """The unwrapped modules the run trains, by name: checked for finite weights, counted in the summary."""
        raise NotImplementedError

    def train_step(self, batches: Iterator[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor] | None:
        """One optimizer step over ``gradient_accumulation_steps`` micro-batches; None if it was skipped."""
        raise NotImplementedError

    def log_lines(self, values: dict[str, float]) -> list[dict[str, float]]:
        """The scalars of one logged step, grouped into the text log's lines."""
        return [values]

    def progress_fields(self, values: dict[str, float]) -> dict[str, str]:
        """What the progress bar shows beside the step."""
        return {"loss": f"{values['loss']:.4f}"}

    def write_sample_sheet(self, path: Path, title: str) -> None:
        """Write the sample sheet of the fixed validation batch to ``path`` (main process only)."""
        raise NotImplementedError

    def export_models(self) -> None:
        """Write the trained models into ``output_dir`` (main process only), each folder staged."""
        raise NotImplementedError

    def finish(self) -> None:
        """The end of a run after the export, on the main process: evaluation, model card, upload."""

    def spread_validation_items(self, count: int) -> list[dict[str, Any]]:
        """Up to ``count`` validation items spread over the split, so that a sample sheet shows several cities
        rather than one city's transmitters."""
        count = min(count, len(self.val_set))
        return [self.val_set[i * len(self.val_set) // count] for i in range(count)]

    def write_pipeline_sheet(
        self, pipeline: Any, module: torch.nn.Module, items: list[dict[str, Any]], path: Path, title: str
    ) -> None:
        """The sheet of ``pipeline``'s maps for ``items`` beside their truth; the trained ``module`` is in eval mode
        meanwhile."""
        buildings = torch.stack([item["buildings"] for item in items])
        transmitter = torch.stack([item["transmitter"] for item in items])
        module.eval()
        # a fixed sampling generator: successive sheets differ only by the weights
        generator = torch.Generator(self.accelerator.device).manual_seed(self.config.train.seed)
        generated = pipeline(buildings, transmitter, generator=generator, output_type="pt").images
        module.train()
        gain_maps = torch.stack([item["gain_map"] for item in items])
        save_generation_sheet(buildings, transmitter, gain_maps, generated, [item["name"] for item in items], path,
                              title=title)

    def evaluate_exported_pipeline(self, num_inference_steps: int | None) -> None:
        """The exported ``pipeline/``, loaded as users load it, on the validation split with the reference rows:
        ``metrics.json`` and ``per_image.csv`` in ``output_dir``, the table printed."""
        result = evaluate_pipeline(
            load_pipeline(self.output_dir / "pipeline"),
            self.val_set,
            num_inference_steps=num_inference_steps,
            batch_size=self.config.train.batch_size,
            device=self.accelerator.device,
            split="val",
            num_workers=self.config.data.num_workers,
        )
        write_pipeline_metrics(result, self.output_dir)
        print(format_pipeline_summary(result.summary()))

    def publish(self, write_card: Callable[..., Path]) -> None:
        """The model card (``write_card``), and the Hub upload when the config asks for it; the exported run is
        already safe on disk."""
        train = self.config.train
        write_card(self.config.output_dir, repo_id=train.hub_repo_id)
        if train.push_to_hub:
            print(f"pushed to {push_to_hub(self.config.output_dir, train.hub_repo_id)}")

    def prepare(
        self, models: dict[str, torch.nn.Module], optimizers: dict[str, TrainedOptimizer]
    ) -> tuple[dict[str, torch.nn.Module], dict[str, TrainedOptimizer]]:
        """``accelerator.prepare`` of the stage's models, then its optimizers, each dict in its order: the order that
        names accelerate's checkpoint files (``model.safetensors``, ``model_1.safetensors``, ...; ``optimizer.bin``,
        ``optimizer_1.bin``, ...), recorded in each checkpoint's manifest."""
        prepared = self.accelerator.prepare(*models.values(), *(trained.optimizer for trained in optimizers.values()))
        prepared = prepared if isinstance(prepared, tuple) else (prepared,)  # one object comes back bare
        prepared_models = dict(zip(models, prepared[: len(models)]))
        prepared_optimizers = {
            name: dataclasses.replace(trained, optimizer=optimizer)
            for (name, trained), optimizer in zip(optimizers.items(), prepared[len(models):])
        }
        return prepared_models, prepared_optimizers

    # ---- the loop ---------------------------------------------------------------------------------------------

    def micro_batches(self) -> Iterator[dict[str, torch.Tensor]]:
        """Training batches from the current position on, epoch after epoch: their tensors on the device."""
        epoch, start = divmod(self.state.step * self.config.train.gradient_accumulation_steps, self.sampler.batches_per_epoch)
        device = self.accelerator.device
        while True:
            self.sampler.set_position(epoch, start)
            for batch in self.loader:
                yield {k: v.to(device, non_blocking=True) for k, v in batch.items() if isinstance(v, torch.Tensor)}
            epoch, start = epoch + 1, 0

    def all_finite(self, finite: torch.Tensor) -> bool:
        """The device-side flag ``finite`` on the host, the same on every rank: the step's one host sync."""
        finite = finite.float()
        if self.accelerator.num_processes > 1:
            # every rank must take the same branch, or DDP's next collective would hang
            finite = self.accelerator.reduce(finite, reduction="min")
        return bool(finite)

    def set_learning_rates(self, step: int) -> float:
        """Each optimizer's rate for ``step`` from its base rate; returns the first optimizer's."""
        rates = []
        for trained in self.parts.optimizers.values():
            rates.append(learning_rate(step, trained.base_lr, self.config.train))
            for group in trained.optimizer.param_groups:
                group["lr"] = rates[-1]
        return rates[0]

    def updates_of(self, *models: str) -> list[tuple[torch.optim.Optimizer, torch.nn.Module]]:
        """The ``(optimizer, model)`` pairs of the optimizers of the named models, for :meth:`optimizer_steps`."""
        chosen = [trained for trained in self.parts.optimizers.values() if trained.model in models]
        return [(trained.optimizer, self.parts.models[trained.model]) for trained in chosen]

    def optimizer_steps(self, updates: list[tuple[torch.optim.Optimizer, torch.nn.Module]]) -> None:
        """Clip and step each ``(optimizer, model)`` of the step.

        With fp16, one GradScaler scaled every loss of the step. accelerate's ``clip_grad_norm_`` unscales every
        optimizer on each call, and each ``AcceleratedOptimizer.step()`` updates the scale, so a second
        optimizer would be unscaled twice (or by a scale its gradients never had). Here each optimizer is
        unscaled exactly once, all are stepped, and the scale is updated once.
        """
        scaler, max_grad_norm = self.accelerator.scaler, self.config.train.max_grad_norm
        if scaler is not None:
            for optimizer, _ in updates:
                scaler.unscale_(optimizer.optimizer)
        if max_grad_norm is not None:
            # each model once, after all of its optimizers are unscaled (Muon and AdamW share one model's parameters)
            for model in {id(model): model for _, model in updates}.values():
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        for optimizer, _ in updates:
            if scaler is not None:
                scaler.step(optimizer.optimizer)  # skipped when the unscaled gradients hold inf or nan
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.update()

    def update_ema(self, module: torch.nn.Module) -> None:
        """After the optimizer step: the EMA of ``module`` every ``train.ema_update_every`` steps."""
        if self.parts.ema is not None and (self.state.step + 1) % self.config.train.ema_update_every == 0:
            self.parts.ema.step(module.parameters())

    def discard_gradients(self) -> None:
        for trained in self.parts.optimizers.values():
            trained.optimizer.zero_grad(set_to_none=True)

    def run(self) -> None:
        train = self.config.train
        batches = self.micro_batches()
        images_per_step = train.batch_size * train.gradient_accumulation_steps * self.accelerator.num_processes
        interval_start, interval_steps = time.perf_counter(), 0
        progress = tqdm(
            total=train.max_steps, initial=self.state.step, desc="train", disable=not self.accelerator.is_main_process
        )
        # the bar is closed however the loop ends, so that an error line starts on a line of its own
        with StopRequest() as stop, progress:
            while self.state.step < train.max_steps:
                step_start = time.perf_counter()
                lr = self.set_learning_rates(self.state.step)
                logs = self.train_step(batches)
                self.state.step += 1
                step = self.state.step
                interval_steps += 1
                if logs is None:
                    self.record_nonfinite_step(step)
                else:
                    self.state.consecutive_nonfinite = 0
                    if step % train.log_every == 0 or step == train.max_steps:
                        images_per_s = interval_steps * images_per_step / (time.perf_counter() - interval_start)
                        self.log_step(step, logs, lr, images_per_s, progress)
                        interval_start, interval_steps = time.perf_counter(), 0
                if step % train.sample_every == 0:
                    self.save_samples(step)
                self.state.wall_time_s += time.perf_counter() - step_start
                progress.update(1)
                if step % train.save_every == 0 or step == train.max_steps:
                    self.save_checkpoint()
                if self.stop_requested(stop):
                    if self.state.last_checkpoint_step != step:
                        self.save_checkpoint()
                    raise KeyboardInterrupt(f"stopped at step {step}; checkpoint saved")

    def stop_requested(self, stop: StopRequest) -> bool:
        if self.accelerator.num_processes == 1:
            return stop.requested  # a device round trip here would be a second host sync every step
        requested = torch.tensor(float(stop.requested), device=self.accelerator.device)
        return bool(self.accelerator.reduce(requested, reduction="max"))

    def record_nonfinite_step(self, step: int) -> None:
        self.state.skipped_steps += 1
        self.state.consecutive_nonfinite += 1
        self.runlog.note(f"[Train Step] {step}/{self.config.train.max_steps}: skipped step: non-finite loss")
        if self.state.consecutive_nonfinite >= self.config.train.max_nonfinite_steps:
            checkpoints = list_checkpoints(self.output_dir)
            kept = f"the last good checkpoint is {checkpoints[-1][1]}" if checkpoints else "no checkpoint was written yet"
            raise TrainingError(
                f"{self.state.consecutive_nonfinite} steps in a row had non-finite losses (up to step {step}); "
                f"stopping. Nothing was updated in those steps and {kept}. Lower train.lr or check the data."
            )

    def log_step(self, step: int, logs: dict[str, torch.Tensor], lr: float, images_per_s: float, progress: tqdm) -> None:
        names = list(logs)
        values = dict(zip(names, torch.stack([logs[name].float() for name in names]).tolist()))
        for line in self.log_lines(values):
            self.runlog.step(step, self.config.train.max_steps, line, lr)
        tracked = {f"train/{k}": v for k, v in values.items()}
        tracked.update({"lr": lr, "images_per_s": images_per_s})
        self.accelerator.log(tracked, step=step)
        progress.set_postfix(**self.progress_fields(values), img_s=f"{images_per_s:.1f}")

    def save_samples(self, step: int) -> None:
        if not self.accelerator.is_main_process or self.config.train.num_sample_images == 0:
            return
        milestone = step // self.config.train.sample_every
        self.write_sample_sheet(self.output_dir / "samples" / sample_file_name(milestone), title=f"step {step}")

    def save_checkpoint(self) -> Path:
        if not all(parameters_are_finite(module) for module in self.trained_modules().values()):
            raise TrainingError(f"step {self.state.step}: the weights are not finite; refusing to checkpoint them")
        path = save_checkpoint(
            self.accelerator,
            self.output_dir,
            self.state,
            self.generator,
            self.parts,
            self.config.train.checkpoints_total_limit,
        )
        self.runlog.note(f"Saved checkpoint {path}")
        return path

    def resume(self, path: Path) -> None:
        self.state = load_checkpoint(self.accelerator, path, self.generator, self.parts)
        if self.state.files is None:
            self.runlog.note(f"{path} has no manifest (written before radiodiff recorded one): read in this run's order")
        self.runlog.note(f"Resumed from {path} at step {self.state.step}")
        self.accelerator.print(f"Resumed from {path} at step {self.state.step}")

    # ---- export -----------------------------------------------------------------------------------------------

    def export(self) -> Path:
        """The stage's models (:meth:`export_models`), ``config.yaml`` and ``training_summary.json``."""
        if not self.accelerator.is_main_process:
            return self.output_dir
        if not all(parameters_are_finite(module) for module in self.trained_modules().values()):
            raise TrainingError("the trained model has non-finite weights; nothing was exported")
        try:
            self.export_models()
            save_config(self.config, self.output_dir / RUN_CONFIG_FILE)
            self.write_summary()
        except OSError as error:
            raise TrainingError(
                f"could not export the trained model to {self.output_dir}: {error}; "
                f"{newest_checkpoint_note(self.output_dir)}, and resuming from it exports again"
            ) from error
        return self.output_dir

    def write_summary(self) -> None:
        train = self.config.train
        device = self.accelerator.device
        hardware = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores, {platform.machine()})"
        summary = {
            "steps": self.state.step,
            "max_steps": train.max_steps,
            "skipped_steps": self.state.skipped_steps,
            "wall_time_s": round(self.state.wall_time_s, 2),
            "hardware": hardware,
            "num_processes": self.accelerator.num_processes,
            "mixed_precision": self.accelerator.mixed_precision,
            "data_source": self.config.data.source,
            "images_per_sec": round(
                self.state.step * train.batch_size * train.gradient_accumulation_steps * self.accelerator.num_processes
                / max(self.state.wall_time_s, 1e-9),
                2,
            ),
            "parameters": {name: sum(p.numel() for p in module.parameters()) for name, module in self.trained_modules().items()},
        }
        write_atomically(self.output_dir / TRAINING_SUMMARY_FILE, json.dumps(summary, indent=2))

    # ---- construction -----------------------------------------------------------------------------------------

    @classmethod
    def datasets(cls, config: Any) -> tuple[Dataset, Dataset]:
        """The training and validation sets of the stage (*stage hook*)."""
        raise NotImplementedError

    @classmethod
    def kwargs_handlers(cls, config: Any) -> list[KwargsHandler]:
        """accelerate's kwargs handlers the stage needs beside the loop's, e.g. its DDP settings (*stage hook*)."""
        return []

    @classmethod
    def build(cls, config: Any) -> "Trainer":
        """accelerate, seeds, data (prepared on the main process first) and the trainer, on every process."""
        accelerator = make_accelerator(config, cls.kwargs_handlers(config))
        set_seed(config.train.seed)
        if config.train.allow_tf32 and torch.cuda.is_available():
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        Path(config.output_dir).mkdir(parents=True, exist_ok=True)
        with accelerator.main_process_first():
            if accelerator.is_main_process:
                prepare_data(config.data)
        return cls(config, accelerator, *cls.datasets(config))


# CPU features with bf16 arithmetic: there bf16 autocast is faster than fp32 (the quickstart's step: about 15 %
# on AVX512-BF16); other CPUs would emulate it, slower than fp32
CPU_BF16_PROBES = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")


def cpu_has_bf16_arithmetic() -> bool:
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in CPU_BF16_PROBES)


def resolved_mixed_precision(train: TrainConfig) -> str:
    """``train.mixed_precision`` with ``auto`` decided: bf16 on a GPU that supports it and on a CPU with bf16
    arithmetic (AVX512-BF16 or AMX), fp32 (``no``) elsewhere."""
    if train.mixed_precision != "auto":
        return train.mixed_precision
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    return "bf16" if cpu_has_bf16_arithmetic() else "no"


def keep_the_runs_precision(config: Any, resume_path: Path, is_main_process: bool = True) -> Any:
    """``config`` with ``train.mixed_precision: auto`` replaced by the precision the checkpoint's run trained in.

    ``auto`` depends on the machine; decided again on another one (a CPU without bf16 arithmetic, another GPU),
    a resumed run would switch precision mid-run and not continue exactly. An explicit precision is the user's
    choice and is kept; so is this machine's ``auto`` where the run's bf16 cannot run (a GPU without bf16).
    """
    recorded = TrainerState.from_file(resume_path / STATE_FILE).mixed_precision
    if config.train.mixed_precision != "auto" or recorded is None:
        return config
    here = resolved_mixed_precision(config.train)
    if recorded == here:
        return config
    say = print if is_main_process else (lambda *args: None)  # one note, not one per process
    if recorded == "bf16" and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        say(f"note: {resume_path} trained in bf16, which this GPU does not support; train.mixed_precision auto "
            f"continues in {here}")
        return config
    say(f"note: train.mixed_precision auto: continuing in {recorded}, the precision {resume_path} trained in "
        f"(on this machine auto would pick {here}; set train.mixed_precision to choose)")
    return dataclasses.replace(config, train=dataclasses.replace(config.train, mixed_precision=recorded))


def make_accelerator(config: Any, kwargs_handlers: Sequence[KwargsHandler] = ()) -> Accelerator:
    train = config.train
    launched_processes = int(os.environ.get("WORLD_SIZE", "1"))
    accelerator = Accelerator(
        # without a GPU, accelerate only forms a process group (gloo) when told to run on the CPU
        cpu=launched_processes > 1 and not torch.cuda.is_available(),
        mixed_precision=resolved_mixed_precision(train),
        log_with=None if train.report_to == "none" else train.report_to,
        project_config=ProjectConfiguration(
            project_dir=config.output_dir, logging_dir=str(Path(config.output_dir) / "logs")
        ),
        kwargs_handlers=[
            InitProcessGroupKwargs(timeout=timedelta(seconds=train.collective_timeout_s)), *kwargs_handlers
        ],
    )
    if accelerator.num_processes != launched_processes:
        # independent copies of one run would overwrite each other's checkpoints
        raise TrainingError(
            f"the launcher started {launched_processes} processes but accelerate formed a group of "
            f"{accelerator.num_processes}; check the launch command"
        )
    return accelerator


def _flat_hparams(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flat_hparams(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return flat


def run_training(trainer_class: type[Trainer], config: Any, resume: str | None, overwrite: bool) -> Path:
    """Train the stage ``trainer_class`` as ``config`` describes; returns the output folder.

    ``resume`` is ``"latest"`` (the newest complete checkpoint in ``output_dir``, or a fresh start if none)
    or the path of a checkpoint folder. A fresh run into an ``output_dir`` that holds checkpoints is refused
    unless ``overwrite``, which deletes them and the exported models first.
    """
    resume_path = resolve_resume(config.output_dir, resume)
    is_main_process = int(os.environ.get("RANK", "0")) == 0
    # before accelerate exists: every process checks the folder before any of them writes to it
    check_output_dir(
        config.output_dir, resume, overwrite, is_main_process=is_main_process, exported=trainer_class.exported_folders
    )
    if resume_path is not None and resume != "latest" and is_main_process:
        # a resume by path starts a new branch: the folder's later checkpoints belong to the one it leaves
        set_aside_newer_checkpoints(config.output_dir, resume_path)
    if resume_path is not None:
        config = keep_the_runs_precision(config, resume_path, is_main_process)
    trainer = trainer_class.build(config)
    accelerator = trainer.accelerator
    if config.train.report_to != "none":
        accelerator.init_trackers(trainer_class.tracker_project, config=_flat_hparams(config.to_dict()))
    if resume_path is not None:
        trainer.resume(resume_path)
    try:
        trainer.run()
        trainer.export()
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            trainer.finish()
    finally:
        trainer.runlog.close()
        # also tears down the process group, so it comes after the last collective
        accelerator.end_training()
    return Path(config.output_dir)
