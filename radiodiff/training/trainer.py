"""The VAE-GAN training loop: one VAE forward per step, the generator update, then the discriminator update.

Read top to bottom: :func:`train` sets up accelerate, data, models and optimizers, restores a checkpoint if
asked, runs :meth:`Trainer.run`, and exports the result. This package is the only place that knows accelerate.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import signal
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator

import torch
from accelerate import Accelerator
from accelerate.utils import InitProcessGroupKwargs, ProjectConfiguration, set_seed
from diffusers.training_utils import EMAModel
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..config import Config, TrainConfig, save_config
from ..files import sample_file_name, write_atomically
from ..data import build_dataset, prepare_data, unaugmented
from ..evaluation import (
    default_variant,
    evaluate_vae,
    latent_statistics,
    load_vae,
    spread_subset,
    write_latent_scale,
    write_metrics,
)
from ..evaluation.commands import format_summary, format_train_subset
from ..hub import push_to_hub, write_model_card
from ..losses import VAEGANLoss
from ..models import PatchGANDiscriminator, RadioDiffVAE
from .checkpoints import (
    TrainerState,
    check_output_dir,
    error_summary,
    list_checkpoints,
    load_checkpoint,
    newest_checkpoint_note,
    resolve_resume,
    run_generator,
    save_checkpoint,
    staged_directory,
)
from .runlog import RunLog
from .samples import save_sample_sheet
from .schedule import ResumableShuffleSampler, learning_rate


class TrainingError(RuntimeError):
    """The run cannot go on; the message says why and what was kept."""


def build_vae(config: Config) -> RadioDiffVAE:
    model = config.model
    if model.pretrained:
        try:
            return RadioDiffVAE.from_pretrained(model.pretrained)
        except (OSError, ValueError) as error:
            # diffusers' message for a missing folder talks about the Hub; say what was expected here
            raise TrainingError(
                f"model.pretrained {model.pretrained}: not a readable vae/ folder (config.json and "
                f"diffusion_pytorch_model.safetensors from save_pretrained or `radiodiff convert`): "
                f"{error_summary(error, lines=1)}"
            ) from error
    return RadioDiffVAE.from_model_config(model, sample_size=config.data.resolution or config.data.synthetic.size)


def build_discriminator(config: Config) -> PatchGANDiscriminator:
    return PatchGANDiscriminator(**dataclasses.asdict(config.discriminator))


def check_channels(vae: RadioDiffVAE, discriminator: PatchGANDiscriminator, train_set: Dataset) -> None:
    """The models must take the maps the data yields; otherwise the first convolution fails deep in torch."""
    channels = train_set[0]["gain_map"].shape[0]
    expected = {
        "model.in_channels": vae.config.in_channels,
        "model.out_channels": vae.config.out_channels,
        "discriminator.in_channels": discriminator.config.in_channels,
    }
    for key, value in expected.items():
        if value != channels:
            raise TrainingError(f"{key}: {value}, but the training maps have {channels} channel(s); expected {channels}")


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
    """Holds what the loop needs; built by :func:`train`."""

    def __init__(self, config: Config, accelerator: Accelerator, train_set: Dataset, val_set: Dataset):
        self.config = config
        self.accelerator = accelerator
        self.train_set, self.val_set = train_set, val_set
        self.output_dir = Path(config.output_dir)
        train = config.train
        device = accelerator.device

        vae, discriminator = build_vae(config), build_discriminator(config)
        check_channels(vae, discriminator, train_set)
        if train.gradient_checkpointing:
            vae.enable_gradient_checkpointing()
        if train.channels_last:
            vae.to(memory_format=torch.channels_last)
            discriminator.to(memory_format=torch.channels_last)
        self.loss_fn = VAEGANLoss(**dataclasses.asdict(config.loss)).to(device)
        # trained tensors outside the prepared models, checkpointed as safetensors (LPIPS's frozen VGG is not)
        self.trained_tensors = {"loss.logvar": self.loss_fn.logvar} if config.loss.learn_logvar else {}
        vae_parameters = list(vae.parameters()) + ([self.loss_fn.logvar] if config.loss.learn_logvar else [])
        adamw = dict(
            betas=(train.adam_beta1, train.adam_beta2),
            weight_decay=train.weight_decay,
            # None leaves torch's choice: a loop over the tensors on CPU, foreach on CUDA
            fused=train.fused_optimizer or None,
        )
        optimizer_g = torch.optim.AdamW(vae_parameters, lr=train.lr, **adamw)
        optimizer_d = torch.optim.AdamW(discriminator.parameters(), lr=train.disc_lr or train.lr, **adamw)
        self.vae, self.discriminator, self.optimizer_g, self.optimizer_d = accelerator.prepare(
            vae, discriminator, optimizer_g, optimizer_d
        )
        # the unwrapped modules: parameters for the adaptive weight, EMA and export, and a discriminator
        # that the generator loss can run without touching DDP's gradient synchronisation
        self.raw_vae: RadioDiffVAE = accelerator.unwrap_model(self.vae)
        self.raw_discriminator: PatchGANDiscriminator = accelerator.unwrap_model(self.discriminator)
        if train.compile:
            # regionally: the encoder and decoder blocks compiled, ``decoder.conv_out`` eager, so that the adaptive
            # weight's two autograd.grad calls at conv_out stay small instead of each running the whole backward;
            # static shapes: each block sees one shape per level, and inductor failed on the dynamic-shape graph
            self.raw_vae.compile_repeated_blocks(dynamic=False)
        # every random draw of the step (the posterior samples) comes from here, never from the global RNG
        self.generator = run_generator(train.seed, accelerator.process_index, device)
        self.ema: EMAModel | None = None
        if train.use_ema:
            self.ema = EMAModel(
                self.raw_vae.parameters(),
                decay=train.ema_decay,
                foreach=True,  # one batched update instead of a Python loop over ~200 tensors
                model_cls=RadioDiffVAE,
                model_config=self.raw_vae.config,
            )
            self.ema.to(device)

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
        # spread over the split, so that the sheet shows several cities rather than one city's transmitters
        sample_count = min(train.num_sample_images, len(val_set))
        sample_items = [val_set[i * len(val_set) // sample_count] for i in range(sample_count)]
        self.sample_maps = [item["gain_map"].to(device) for item in sample_items]
        self.sample_names = [item["name"] for item in sample_items]
        self.state = TrainerState()
        self.runlog = RunLog(self.output_dir / "logs", config.to_dict(), enabled=accelerator.is_main_process)

    # ---- the loop ---------------------------------------------------------------------------------------------

    def micro_batches(self) -> Iterator[torch.Tensor]:
        """Training maps from the current position on, epoch after epoch."""
        epoch, start = divmod(self.state.step * self.config.train.gradient_accumulation_steps, self.sampler.batches_per_epoch)
        while True:
            self.sampler.set_position(epoch, start)
            for batch in self.loader:
                gain_map = batch["gain_map"].to(self.accelerator.device, non_blocking=True)
                if self.config.train.channels_last:
                    gain_map = gain_map.contiguous(memory_format=torch.channels_last)
                yield gain_map
            epoch, start = epoch + 1, 0

    def all_finite(self, finite: torch.Tensor) -> bool:
        """The device-side flag ``finite`` on the host, the same on every rank: the step's one host sync."""
        finite = finite.float()
        if self.accelerator.num_processes > 1:
            # every rank must take the same branch, or DDP's next collective would hang
            finite = self.accelerator.reduce(finite, reduction="min")
        return bool(finite)

    def set_learning_rates(self, step: int) -> float:
        train = self.config.train
        lr = learning_rate(step, train.lr, train)
        for group in self.optimizer_g.param_groups:
            group["lr"] = lr
        for group in self.optimizer_d.param_groups:
            group["lr"] = learning_rate(step, train.disc_lr or train.lr, train)
        return lr

    def optimizer_steps(self, updates: list[tuple[torch.optim.Optimizer, torch.nn.Module]]) -> None:
        """Clip and step each ``(optimizer, model)`` of the step.

        With fp16, one GradScaler scaled every loss of the step. accelerate's ``clip_grad_norm_`` unscales every
        optimizer on each call, and each ``AcceleratedOptimizer.step()`` updates the scale, so the second
        optimizer would be unscaled twice (or by a scale its gradients never had). Here each optimizer is
        unscaled exactly once, all are stepped, and the scale is updated once.
        """
        scaler, max_grad_norm = self.accelerator.scaler, self.config.train.max_grad_norm
        for optimizer, model in updates:
            if scaler is not None:
                scaler.unscale_(optimizer.optimizer)
            if max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        for optimizer, _ in updates:
            if scaler is not None:
                scaler.step(optimizer.optimizer)  # skipped when the unscaled gradients hold inf or nan
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.update()

    def train_step(self, batches: Iterator[torch.Tensor]) -> dict[str, torch.Tensor] | None:
        """One optimizer step over ``gradient_accumulation_steps`` micro-batches; None if it was skipped."""
        step = self.state.step
        accumulation = self.config.train.gradient_accumulation_steps
        disc_active = self.loss_fn.discriminator_active(step)
        # checked once after every backward, not per loss: a mid-step host sync would stall a GPU's queue
        finite = torch.ones((), dtype=torch.bool, device=self.accelerator.device)
        for micro_step in range(accumulation):
            gain_map = next(batches)
            with contextlib.ExitStack() as stack:
                if micro_step < accumulation - 1:
                    stack.enter_context(self.accelerator.no_sync(self.vae))
                    stack.enter_context(self.accelerator.no_sync(self.discriminator))
                output = self.vae(gain_map, sample_posterior=True, return_posterior=True, generator=self.generator)
                # the losses sum over every pixel: under autocast they still add up in fp32
                reconstruction = output.sample.float()
                g_loss, logs = self.loss_fn.generator_loss(
                    gain_map, reconstruction, output.posterior, step, self.raw_discriminator, self.raw_vae.last_layer_weight
                )
                finite &= torch.isfinite(g_loss)
                # backward first: the discriminator's own forwards then never hold memory beside the VAE's graph
                self.accelerator.backward(g_loss / accumulation)
                if disc_active:
                    d_loss, d_logs = self.loss_fn.discriminator_loss(gain_map, reconstruction, step, self.discriminator)
                    logs.update(d_logs)
                    finite &= torch.isfinite(d_loss)
                    self.accelerator.backward(d_loss / accumulation)
        # a non-finite loss anywhere in the step discards all of its gradients
        if not self.all_finite(finite):
            self.optimizer_g.zero_grad(set_to_none=True)
            self.optimizer_d.zero_grad(set_to_none=True)
            return None
        if self.config.loss.learn_logvar and self.accelerator.num_processes > 1:
            # logvar lives outside the DDP-wrapped VAE, so DDP does not average its gradient
            logvar = self.loss_fn.logvar
            logvar.grad = self.accelerator.reduce(logvar.grad, reduction="mean")
        # no discriminator work before disc_start: not even weight decay (the original still applied it)
        updates = [(self.optimizer_g, self.vae)] + ([(self.optimizer_d, self.discriminator)] if disc_active else [])
        self.optimizer_steps(updates)
        if self.ema is not None and (step + 1) % self.config.train.ema_update_every == 0:
            self.ema.step(self.raw_vae.parameters())
        return logs

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
        generator = {k: v for k, v in values.items() if k not in ("disc_loss", "logits_real", "logits_fake")}
        self.runlog.step(step, self.config.train.max_steps, generator, lr)
        if "disc_loss" in values:
            discriminator = {k: values[k] for k in ("disc_loss", "logits_real", "logits_fake")}
            self.runlog.step(step, self.config.train.max_steps, discriminator, lr)
        tracked = {f"train/{k}": v for k, v in values.items()}
        tracked.update({"lr": lr, "images_per_s": images_per_s})
        self.accelerator.log(tracked, step=step)
        progress.set_postfix(rec=f"{values['rec_loss']:.4f}", kl=f"{values['kl_loss']:.3g}", img_s=f"{images_per_s:.1f}")

    @torch.no_grad()
    def save_samples(self, step: int) -> None:
        if not self.accelerator.is_main_process or not self.sample_maps:
            return
        sample_maps = torch.stack(self.sample_maps)
        self.raw_vae.eval()
        reconstruction = self.raw_vae(sample_maps).sample
        self.raw_vae.train()
        milestone = step // self.config.train.sample_every
        save_sample_sheet(
            sample_maps,
            reconstruction,
            self.sample_names,
            self.output_dir / "samples" / sample_file_name(milestone),
            title=f"step {step}",
        )

    def save_checkpoint(self) -> Path:
        if not parameters_are_finite(self.raw_vae) or not parameters_are_finite(self.raw_discriminator):
            raise TrainingError(f"step {self.state.step}: the weights are not finite; refusing to checkpoint them")
        path = save_checkpoint(
            self.accelerator,
            self.output_dir,
            self.state,
            self.generator,
            self.trained_tensors,
            self.ema,
            self.config.train.checkpoints_total_limit,
        )
        self.runlog.note(f"Saved checkpoint {path}")
        return path

    def resume(self, path: Path) -> None:
        self.state = load_checkpoint(self.accelerator, path, self.generator, self.trained_tensors, self.ema)
        self.runlog.note(f"Resumed from {path} at step {self.state.step}")
        self.accelerator.print(f"Resumed from {path} at step {self.state.step}")

    # ---- export -----------------------------------------------------------------------------------------------

    def export(self) -> Path:
        """Write ``vae/`` (with the EMA weights as the ``ema`` variant), ``discriminator/`` and a summary."""
        if not self.accelerator.is_main_process:
            return self.output_dir
        if not parameters_are_finite(self.raw_vae):
            raise TrainingError("the trained VAE has non-finite weights; nothing was exported")
        try:
            # staged: a full disk or a kill leaves an earlier export whole, never a half-written one
            with staged_directory(self.output_dir / "vae") as vae_dir:
                self.raw_vae.save_pretrained(vae_dir)
                if self.ema is not None:
                    ema_vae = RadioDiffVAE.from_config(self.raw_vae.config)
                    self.ema.copy_to(ema_vae.parameters())
                    ema_vae.save_pretrained(vae_dir, variant="ema")
            with staged_directory(self.output_dir / "discriminator") as discriminator_dir:
                self.raw_discriminator.save_pretrained(discriminator_dir)
            save_config(self.config, self.output_dir / "config.yaml")
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
            "parameters": {
                "vae": sum(p.numel() for p in self.raw_vae.parameters()),
                "discriminator": sum(p.numel() for p in self.raw_discriminator.parameters()),
            },
        }
        write_atomically(self.output_dir / "training_summary.json", json.dumps(summary, indent=2))


def measure_export(config: Config, train_set: Dataset, val_set: Dataset, device: torch.device) -> None:
    """The exported VAE, loaded once as users will load it (its EMA weights when it has them):

    - the latents of up to ``train.latent_scale_maps`` training maps set the shift factor (their mean) and the
      scaling factor (1/std) stored in ``vae/config.json`` for the diffusion stage;
    - with ``train.evaluate_at_end``, the validation split gives ``metrics.json`` and ``per_image.csv``, which the
      model card reports, beside as many training maps as the validation split has (``train_subset``), so that
      a model that memorises its training maps shows it.

    Both read the training maps as they are, never their augmented copies.
    """
    train = config.train
    if train.latent_scale_maps == 0 and not train.evaluate_at_end:
        return
    train_maps = unaugmented(train_set)
    vae_dir = Path(config.output_dir) / "vae"
    variant = default_variant(vae_dir)
    vae = load_vae(vae_dir, variant)
    shared = dict(batch_size=train.batch_size, device=device, num_workers=config.data.num_workers)
    if train.latent_scale_maps > 0:
        stats = latent_statistics(vae, spread_subset(train_maps, train.latent_scale_maps), seed=train.seed, **shared)
        write_latent_scale(vae_dir, stats.scaling_factor, stats.shift_factor)
    if train.evaluate_at_end:
        validation = evaluate_vae(vae, val_set, split="val", variant=variant, **shared)
        train_subset = evaluate_vae(
            vae, spread_subset(train_maps, len(val_set)), split="train", variant=variant, **shared
        )
        write_metrics(validation, config.output_dir, train_subset=train_subset)
        print(format_summary(validation))
        print(format_train_subset(validation, train_subset))


def publish(config: Config) -> None:
    """The model card, and the Hub upload when the config asks for it; the exported run is already safe on disk."""
    write_model_card(config.output_dir, repo_id=config.train.hub_repo_id)
    if config.train.push_to_hub:
        url = push_to_hub(config.output_dir, config.train.hub_repo_id)
        print(f"pushed to {url}")


def resolved_mixed_precision(train: TrainConfig) -> str:
    """``train.mixed_precision`` with ``auto`` decided: bf16 on a GPU that supports it, fp32 (``no``) elsewhere."""
    if train.mixed_precision != "auto":
        return train.mixed_precision
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def make_accelerator(config: Config) -> Accelerator:
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
        kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(seconds=train.collective_timeout_s))],
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


def build_trainer(config: Config) -> Trainer:
    """accelerate, seeds, data (prepared on the main process first) and the :class:`Trainer`, on every process."""
    accelerator = make_accelerator(config)
    set_seed(config.train.seed)
    if config.train.allow_tf32 and torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    Path(config.output_dir).mkdir(parents=True, exist_ok=True)
    with accelerator.main_process_first():
        if accelerator.is_main_process:
            prepare_data(config.data)
    return Trainer(config, accelerator, build_dataset(config.data, "train"), build_dataset(config.data, "val"))


def train(config: Config, resume: str | None = None, overwrite: bool = False) -> Path:
    """Train the VAE-GAN described by ``config``; returns the output folder.

    ``resume`` is ``"latest"`` (the newest complete checkpoint in ``output_dir``, or a fresh start if none)
    or the path of a checkpoint folder. A fresh run into an ``output_dir`` that holds checkpoints is refused
    unless ``overwrite``, which deletes them and the exported models first.
    """
    resume_path = resolve_resume(config.output_dir, resume)
    # before accelerate exists: every process checks the folder before any of them writes to it
    check_output_dir(config.output_dir, resume, overwrite, is_main_process=int(os.environ.get("RANK", "0")) == 0)
    trainer = build_trainer(config)
    accelerator = trainer.accelerator
    if config.train.report_to != "none":
        accelerator.init_trackers("radiodiff-vae", config=_flat_hparams(config.to_dict()))
    if resume_path is not None:
        trainer.resume(resume_path)
    try:
        trainer.run()
        trainer.export()
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            measure_export(config, trainer.train_set, trainer.val_set, accelerator.device)
            publish(config)
    finally:
        trainer.runlog.close()
        # also tears down the process group, so it comes after the last collective
        accelerator.end_training()
    return Path(config.output_dir)
