"""The first stage: the VAE-GAN step (one VAE forward, the generator update, then the discriminator update).

:class:`VAETrainer` adds its models, its step, its sample sheet and its export (``vae/`` with the EMA weights as
the ``ema`` variant, ``discriminator/``) to the shared loop of :mod:`.trainer`; :func:`train` runs it.
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Iterator

import torch
from accelerate import Accelerator
from diffusers.training_utils import EMAModel
from torch.utils.data import Dataset

from ..config import VAEConfig
from ..data import build_dataset, unaugmented
from ..evaluation import (
    default_variant,
    evaluate_vae,
    latent_statistics,
    load_vae,
    spread_subset,
    write_latent_scale,
    write_vae_metrics,
)
from ..evaluation.commands import format_train_subset, format_vae_summary
from ..hub import write_vae_model_card
from ..losses import VAEGANLoss
from ..models import PatchGANDiscriminator, RadioDiffVAE
from .checkpoints import TrainedParts, error_summary, staged_directory
from .samples import save_sample_sheet
from .optim import build_optimizers
from .trainer import Trainer, TrainingError, run_training, trained_optimizers

DISCRIMINATOR_LOGS = ("disc_loss", "logits_real", "logits_fake")


def build_vae(config: VAEConfig) -> RadioDiffVAE:
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
    return RadioDiffVAE.from_block_channels(
        **model.architecture(), sample_size=config.data.resolution or config.data.synthetic.size
    )


def build_discriminator(config: VAEConfig) -> PatchGANDiscriminator:
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


class VAETrainer(Trainer):
    """The VAE-GAN: the VAE and the discriminator, each with its AdamW, and an EMA of the VAE."""

    tracker_project = "radiodiff-vae"
    exported_folders = ("vae", "discriminator")

    def __init__(self, config: VAEConfig, accelerator: Accelerator, train_set: Dataset, val_set: Dataset):
        super().__init__(config, accelerator, train_set, val_set)
        self.vae, self.discriminator = self.parts.models["vae"], self.parts.models["discriminator"]
        train, device = config.train, accelerator.device
        # spread over the split, so that the sheet shows several cities rather than one city's transmitters
        sample_count = min(train.num_sample_images, len(val_set))
        sample_items = [val_set[i * len(val_set) // sample_count] for i in range(sample_count)]
        self.sample_maps = [item["gain_map"].to(device) for item in sample_items]
        self.sample_names = [item["name"] for item in sample_items]

    def build_trained_parts(self) -> TrainedParts:
        """The VAE and the discriminator, the VAE's optimizers (AdamW, or Muon beside AdamW) and the discriminator's
        AdamW, the EMA of the VAE, and the loss's learned log-variance when it learns one."""
        config, accelerator = self.config, self.accelerator
        train = config.train
        vae, discriminator = build_vae(config), build_discriminator(config)
        check_channels(vae, discriminator, self.train_set)
        if train.gradient_checkpointing:
            vae.enable_gradient_checkpointing()
        if train.channels_last:
            vae.to(memory_format=torch.channels_last)
            discriminator.to(memory_format=torch.channels_last)
        self.loss_fn = VAEGANLoss(**dataclasses.asdict(config.loss)).to(accelerator.device)
        # trained outside the prepared models, checkpointed as safetensors (LPIPS's frozen VGG is not)
        extra_trained_tensors = {"loss.logvar": self.loss_fn.logvar} if config.loss.learn_logvar else {}
        vae_parameters = list(vae.named_parameters()) + list(extra_trained_tensors.items())
        vae_optimizers = build_optimizers(vae_parameters, train, train.lr, edge_layers=RadioDiffVAE.edge_layers)
        # the discriminator's AdamW whatever train.optimizer
        discriminator_optimizers = build_optimizers(
            list(discriminator.named_parameters()),
            dataclasses.replace(train, optimizer="adamw"),
            train.disc_lr or train.lr,
        )
        # in this order, so that checkpoints written before the manifest read the same (optimizer.bin: the VAE's)
        models, optimizers = self.prepare(
            {"vae": vae, "discriminator": discriminator},
            {
                **trained_optimizers("vae", vae_optimizers, train.lr),
                **trained_optimizers("discriminator", discriminator_optimizers, train.disc_lr or train.lr),
            },
        )
        # the unwrapped modules: parameters for the adaptive weight, EMA and export, and a discriminator
        # that the generator loss can run without touching DDP's gradient synchronisation
        self.raw_vae: RadioDiffVAE = accelerator.unwrap_model(models["vae"])
        self.raw_discriminator: PatchGANDiscriminator = accelerator.unwrap_model(models["discriminator"])
        if train.compile:
            # regionally: the encoder and decoder blocks compiled, ``decoder.conv_out`` eager, so that the adaptive
            # weight's two autograd.grad calls at conv_out stay small instead of each running the whole backward;
            # static shapes: each block sees one shape per level, and inductor failed on the dynamic-shape graph
            self.raw_vae.compile_repeated_blocks(dynamic=False)
        ema = None
        if train.use_ema:
            ema = EMAModel(
                self.raw_vae.parameters(),
                decay=train.ema_decay,
                foreach=True,  # one batched update instead of a Python loop over ~200 tensors
                model_cls=RadioDiffVAE,
                model_config=self.raw_vae.config,
            )
            ema.to(accelerator.device)
        return TrainedParts(models, optimizers, ema, extra_trained_tensors)

    @classmethod
    def datasets(cls, config: VAEConfig) -> tuple[Dataset, Dataset]:
        return build_dataset(config.data, "train"), build_dataset(config.data, "val")

    def trained_modules(self) -> dict[str, torch.nn.Module]:
        return {"vae": self.raw_vae, "discriminator": self.raw_discriminator}

    def train_step(self, batches: Iterator[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor] | None:
        step = self.state.step
        accumulation = self.config.train.gradient_accumulation_steps
        disc_active = self.loss_fn.discriminator_active(step)
        # checked once after every backward, not per loss: a mid-step host sync would stall a GPU's queue
        finite = torch.ones((), dtype=torch.bool, device=self.accelerator.device)
        for micro_step in range(accumulation):
            gain_map = next(batches)["gain_map"]
            if self.config.train.channels_last:
                gain_map = gain_map.contiguous(memory_format=torch.channels_last)
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
            self.discard_gradients()
            return None
        if self.accelerator.num_processes > 1:
            # they live outside the DDP-wrapped VAE, so DDP does not average their gradients
            for tensor in self.parts.extra_trained_tensors.values():
                tensor.grad = self.accelerator.reduce(tensor.grad, reduction="mean")
        # no discriminator work before disc_start: not even weight decay (the original still applied it)
        self.optimizer_steps(self.updates_of("vae", "discriminator") if disc_active else self.updates_of("vae"))
        self.update_ema(self.raw_vae)
        return logs

    def log_lines(self, values: dict[str, float]) -> list[dict[str, float]]:
        # the original's format: the generator's line, then the discriminator's once it trains
        lines = [{k: v for k, v in values.items() if k not in DISCRIMINATOR_LOGS}]
        if "disc_loss" in values:
            lines.append({k: values[k] for k in DISCRIMINATOR_LOGS})
        return lines

    def progress_fields(self, values: dict[str, float]) -> dict[str, str]:
        return {"rec": f"{values['rec_loss']:.4f}", "kl": f"{values['kl_loss']:.3g}"}

    @torch.no_grad()
    def write_sample_sheet(self, path: Path, title: str) -> None:
        sample_maps = torch.stack(self.sample_maps)
        self.raw_vae.eval()
        reconstruction = self.raw_vae(sample_maps).sample
        self.raw_vae.train()
        save_sample_sheet(sample_maps, reconstruction, self.sample_names, path, title=title)

    def export_models(self) -> None:
        """``vae/`` (with the EMA weights as the ``ema`` variant) and ``discriminator/``."""
        # staged: a full disk or a kill leaves an earlier export whole, never a half-written one
        with staged_directory(self.output_dir / "vae") as vae_dir:
            self.raw_vae.save_pretrained(vae_dir)
            if self.parts.ema is not None:
                ema_vae = RadioDiffVAE.from_config(self.raw_vae.config)
                self.parts.ema.copy_to(ema_vae.parameters())
                ema_vae.save_pretrained(vae_dir, variant="ema")
        with staged_directory(self.output_dir / "discriminator") as discriminator_dir:
            self.raw_discriminator.save_pretrained(discriminator_dir)

    def finish(self) -> None:
        scale_and_evaluate_exported_vae(self.config, self.train_set, self.val_set, self.accelerator.device)
        self.publish(write_vae_model_card)


def scale_and_evaluate_exported_vae(
    config: VAEConfig, train_set: Dataset, val_set: Dataset, device: torch.device
) -> None:
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
        write_vae_metrics(validation, config.output_dir, train_subset=train_subset)
        print(format_vae_summary(validation))
        print(format_train_subset(validation, train_subset))


def build_vae_trainer(config: VAEConfig) -> VAETrainer:
    """The first stage's trainer on every process, with accelerate, seeds and data set up."""
    return VAETrainer.build(config)


def train_vae(config: VAEConfig, resume: str | None = None, overwrite: bool = False) -> Path:
    """Train the VAE-GAN described by ``config``; returns the output folder (see :func:`.trainer.run_training`)."""
    return run_training(VAETrainer, config, resume, overwrite)
