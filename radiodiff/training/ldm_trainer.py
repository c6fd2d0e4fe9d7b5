"""The second stage: a latent diffusion model of radio maps on a frozen first-stage VAE.

:class:`LDMTrainer` adds to the shared loop of :mod:`.trainer` the frozen VAE, the trained
:class:`~radiodiff.models.ConditionedDenoiser` (condition encoder + UNet) with its AdamW and EMA, the training
step of its formulation (:mod:`radiodiff.schedulers.formulations`), a sample sheet of generated maps, and the
export of the whole :class:`~radiodiff.RadioDiffPipeline` to ``pipeline/``; :func:`train_ldm` runs it.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Iterator

import torch
from accelerate import Accelerator
from diffusers import AutoencoderKL
from diffusers.training_utils import EMAModel
from diffusers.utils.torch_utils import randn_tensor
from torch.utils.data import Dataset

from ..config import FrozenVAEConfig, LDMConfig
from ..data import build_dataset
from ..evaluation import default_variant, load_vae
from ..hub import write_pipeline_model_card
from ..latents import EncodedLatentsDataset, latent_shape_of
from ..models import ConditionedDenoiser, downsampling_factor, normalize_latents
from ..pipelines import RadioDiffPipeline
from ..schedulers import build_formulation
from .checkpoints import TrainedParts, error_summary, staged_directory, stored_model_config
from .optim import build_optimizers
from .trainer import Trainer, TrainingError, run_training, trained_optimizers

HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def load_frozen_vae(vae: FrozenVAEConfig) -> AutoencoderKL:
    """The first stage's VAE from a local ``vae/`` folder or a Hub id (its ``vae/`` subfolder), frozen.

    ``variant: auto`` takes the EMA weights when the folder has them.
    """
    path = Path(vae.path).expanduser()
    try:
        if path.is_dir():
            variant = default_variant(path) if vae.variant == "auto" else vae.variant
            model = load_vae(path, variant)
        elif HUB_ID.match(vae.path) and not path.exists():
            model = _hub_vae(vae.path, vae.variant)
        else:
            raise FileNotFoundError("no such folder")
    except (OSError, ValueError) as error:
        raise TrainingError(
            f"vae.path {vae.path}: no VAE there; expected the first stage's vae/ folder (config.json and "
            f"diffusion_pytorch_model[.ema].safetensors, e.g. outputs/quickstart/vae) or a Hub id "
            f"({error_summary(error, lines=1)})"
        ) from error
    model.requires_grad_(False)
    return model.eval()


def _hub_vae(repo_id: str, variant: str | None) -> AutoencoderKL:
    """The ``vae/`` subfolder of a first-stage repository on the Hub (a ``radiodiff push`` of a run)."""
    load = dict(subfolder="vae", use_safetensors=True)
    if variant == "auto":
        try:
            return AutoencoderKL.from_pretrained(repo_id, variant="ema", **load)
        except (OSError, ValueError):
            variant = None
    return AutoencoderKL.from_pretrained(repo_id, variant=variant, **load)


def check_data_fits_vae(vae: AutoencoderKL, item: dict[str, torch.Tensor], where: str) -> None:
    """The maps and their conditions must be the size and channels the VAE (and so the pipeline) takes."""
    size = vae.config.sample_size
    channels, height, width = item["gain_map"].shape
    if (height, width) != (size, size):
        raise TrainingError(
            f"{where}: maps of {height}x{width}, but the VAE at vae.path is for {size}x{size} maps (its sample_size), "
            f"and the exported pipeline generates that size; expected the first stage's data settings"
        )
    if channels != vae.config.in_channels:
        raise TrainingError(f"{where}: maps with {channels} channel(s), but the VAE takes {vae.config.in_channels}")
    check_square_maps(item, where)


def check_square_maps(item: dict[str, torch.Tensor], where: str) -> None:
    """A pixel-space denoiser generates square maps of one size: the conditions must be the gain maps' size."""
    height, width = item["gain_map"].shape[-2:]
    if height != width:
        raise TrainingError(f"{where}: maps of {height}x{width}; expected square maps (the pipeline makes size x size)")
    for name in ("buildings", "transmitter"):
        if tuple(item[name].shape) != (1, height, width):
            raise TrainingError(
                f"{where}: {name} maps shaped {tuple(item[name].shape)}; expected (1, {height}, {width}) like the "
                "gain maps"
            )


def check_encoded_latents(vae: AutoencoderKL, latents: EncodedLatentsDataset, maps: Dataset, where: str) -> None:
    """Encoded latents must come from this VAE, with conditions of its size, for the training split's maps."""
    size = vae.config.sample_size
    info = latents.info
    expected_shape = list(latent_shape_of(vae.config, size, size))
    if info["latent_shape"] != expected_shape:
        raise TrainingError(
            f"{where}: latents shaped {info['latent_shape']}, but the VAE at vae.path makes {expected_shape} from "
            f"{size}x{size} maps; encode them with this VAE (radiodiff encode-latents)"
        )
    if (info["scaling_factor"], info["shift_factor"]) != (vae.config.scaling_factor, vae.config.shift_factor):
        raise TrainingError(
            f"{where}: latents encoded by a VAE with scaling_factor {info['scaling_factor']} and shift_factor "
            f"{info['shift_factor']}, but the VAE at vae.path has {vae.config.scaling_factor} and "
            f"{vae.config.shift_factor}; encode them with this VAE"
        )
    if info["condition_shape"] != [1, size, size]:
        raise TrainingError(
            f"{where}: conditions shaped {info['condition_shape']}; expected [1, {size}, {size}] like the VAE's maps"
        )
    names = [latents.rows[i]["name"] for i in (0, len(latents) - 1)]
    if len(latents) != len(maps) or names != [maps[0]["name"], maps[len(maps) - 1]["name"]]:
        raise TrainingError(
            f"{where}: {len(latents)} latents from {names[0]} to {names[-1]}, but the training split has {len(maps)} "
            f"maps from {maps[0]['name']}; expected `radiodiff encode-latents --split train` with this data config"
        )


class LDMTrainer(Trainer):
    """The conditional latent diffusion model: condition encoder + UNet trained, the VAE frozen."""

    tracker_project = "radiodiff-ldm"
    exported_folders = ("pipeline",)

    def __init__(self, config: LDMConfig, accelerator: Accelerator, train_set: Dataset, val_set: Dataset):
        super().__init__(config, accelerator, train_set, val_set)
        self.model = self.parts.models["denoiser"]
        self.sample_items = self.spread_validation_items(config.train.num_sample_images)

    def build_trained_parts(self) -> TrainedParts:
        """The denoiser (condition encoder + UNet) on the frozen VAE's latents (or on the maps themselves, in pixel
        space), its optimizers and its EMA."""
        config, accelerator = self.config, self.accelerator
        train, device = config.train, accelerator.device
        self.formulation = build_formulation(config.denoiser.formulation, config.diffusion)
        if config.denoiser.space == "pixel":
            # the maps themselves, on [-1, 1]: no VAE, so the denoiser's "latent" is the map, folded by 1
            self.vae = None
            check_square_maps(self.val_set[0], "data (validation split)")
            channels, size = self.val_set[0]["gain_map"].shape[:2]
            factor, sample_size = 1, size
        else:
            # frozen: never prepared, so never in the optimizer, DDP or the checkpoints
            self.vae = load_frozen_vae(config.vae).to(device)
            check_data_fits_vae(self.vae, self.val_set[0], "data (validation split)")
            if isinstance(self.train_set, EncodedLatentsDataset):
                maps = build_dataset(config.data, "train", with_conditions=True)
                check_encoded_latents(self.vae, self.train_set, maps, f"latents.dir {config.latents.dir}")
            else:
                check_data_fits_vae(self.vae, self.train_set[0], "data (training split)")
            factor = downsampling_factor(self.vae.config.block_out_channels)
            channels, sample_size = self.vae.config.latent_channels, self.vae.config.sample_size // factor
        model = ConditionedDenoiser.from_preset(
            config.denoiser.preset, channels, self.formulation.outputs_per_latent_channel(),
            sample_size=sample_size, downsampling_factor=factor,
        )
        if train.gradient_checkpointing:
            model.unet.enable_gradient_checkpointing()
        optimizers = build_optimizers(list(model.named_parameters()), train, train.lr, model.edge_layers)
        models, optimizers = self.prepare({"denoiser": model}, trained_optimizers("denoiser", optimizers, train.lr))
        self.raw_model: ConditionedDenoiser = accelerator.unwrap_model(models["denoiser"])
        if train.compile:
            self.raw_model.compile_repeated_blocks(dynamic=False)
        ema = None
        if train.use_ema:
            ema = EMAModel(
                self.raw_model.parameters(),
                decay=train.ema_decay,
                foreach=True,
                model_cls=ConditionedDenoiser,
                model_config=self.raw_model.config,
            )
            ema.to(device)
        return TrainedParts(models, optimizers, ema)

    @classmethod
    def datasets(cls, config: LDMConfig) -> tuple[Dataset, Dataset]:
        val_set = build_dataset(config.data, "val", with_conditions=True)
        if config.latents.source == "encoded":
            try:
                return EncodedLatentsDataset(config.latents.dir), val_set
            except ValueError as error:
                raise TrainingError(f"latents.dir {error}") from error
        return build_dataset(config.data, "train", with_conditions=True), val_set

    def trained_modules(self) -> dict[str, torch.nn.Module]:
        return {"unet": self.raw_model.unet, "condition_encoder": self.raw_model.condition_encoder}

    # ---- the step -------------------------------------------------------------------------------------------

    @torch.no_grad()
    def clean_latents(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """x0: a posterior sample of each map's latent (from the run's generator), normalised for diffusion.

        The posterior comes from the frozen VAE, or from ``encode-latents``' stored mean and std; the sample is
        drawn the same way for both, so the two sources train alike up to the encoder's float rounding. In pixel
        space, the map itself.
        """
        if self.vae is None:
            return batch["gain_map"].float()
        if "latent_mean" in batch:
            mean, std = batch["latent_mean"], batch["latent_std"]
        else:
            with self.accelerator.autocast():
                posterior = self.vae.encode(batch["gain_map"]).latent_dist
            mean, std = posterior.mean.float(), posterior.std.float()
        noise = randn_tensor(mean.shape, generator=self.generator, device=mean.device, dtype=mean.dtype)
        return normalize_latents(mean + std * noise, self.vae.config)

    def diffusion_loss(
        self, x0: torch.Tensor, buildings: torch.Tensor, transmitter: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The formulation's loss on one micro-batch; its draws, then the dropout, from the run's generator."""
        batch_size, device = x0.shape[0], x0.device
        pair = self.formulation.training_pair(x0, self.generator)
        keep = None
        if self.config.denoiser.condition_dropout > 0:
            dropped = torch.rand(batch_size, generator=self.generator, device=device) < self.config.denoiser.condition_dropout
            keep = (~dropped).float().reshape(-1, 1, 1, 1)
        output = self.model(pair.model_input, pair.timesteps, buildings, transmitter, keep).float()
        return self.formulation.loss(output, pair)

    def train_step(self, batches: Iterator[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor] | None:
        accumulation = self.config.train.gradient_accumulation_steps
        # checked once after every backward, not per loss: a mid-step host sync would stall a GPU's queue
        finite = torch.ones((), dtype=torch.bool, device=self.accelerator.device)
        for micro_step in range(accumulation):
            batch = next(batches)
            x0 = self.clean_latents(batch)
            sync = self.accelerator.no_sync(self.model) if micro_step < accumulation - 1 else contextlib.nullcontext()
            with sync:
                loss, logs = self.diffusion_loss(x0, batch["buildings"], batch["transmitter"])
                finite &= torch.isfinite(loss)
                self.accelerator.backward(loss / accumulation)
        if not self.all_finite(finite):
            self.discard_gradients()
            return None
        self.optimizer_steps(self.updates_of("denoiser"))
        self.update_ema(self.raw_model)
        return logs

    # ---- samples, resume and export ---------------------------------------------------------------------------

    def pipeline(self) -> RadioDiffPipeline:
        """The pipeline of the frozen VAE and the trained denoiser: its EMA weights when the run keeps an EMA."""
        model = self.raw_model
        if self.parts.ema is not None:
            model = ConditionedDenoiser.from_config(self.raw_model.config).to(self.accelerator.device).eval()
            self.parts.ema.copy_to(model.parameters())
        pipeline = RadioDiffPipeline(
            vae=self.vae, unet=model.unet, condition_encoder=model.condition_encoder,
            scheduler=self.formulation.scheduler,
            default_num_inference_steps=self.config.diffusion.sampling_steps,
        )
        pipeline.set_progress_bar_config(disable=True)
        return pipeline

    def write_sample_sheet(self, path: Path, title: str) -> None:
        weights = "EMA weights" if self.parts.ema is not None else "weights"
        self.write_pipeline_sheet(self.pipeline(), self.raw_model, self.sample_items, path, f"{title} ({weights})")

    def resume(self, path: Path) -> None:
        # a checkpoint of a run on another VAE would fail deep in torch's load_state_dict: name the cause instead
        stored = stored_model_config(path, "denoiser")  # None in checkpoints written before the manifest
        expected = self.raw_model.unet.config.in_channels
        if self.vae is not None and stored is not None and stored["unet_config"]["in_channels"] != expected:
            condition_channels = self.raw_model.condition_encoder.config.out_channels
            raise TrainingError(
                f"--resume {path}: its denoiser takes {stored['unet_config']['in_channels'] - condition_channels} "
                f"latent channels, but the VAE at vae.path {self.config.vae.path} has {self.vae.config.latent_channels}; "
                f"expected a checkpoint of a run on this VAE"
            )
        super().resume(path)

    def finish(self) -> None:
        """The exported pipeline, loaded as users load it, on the validation split: ``metrics.json`` and
        ``per_image.csv`` with the VAE ceiling and the physics baseline on the same maps (``train.evaluate_at_end``);
        then the model card, and the upload when asked."""
        if self.config.train.evaluate_at_end:
            self.evaluate_exported_pipeline(self.config.diffusion.sampling_steps)
        self.publish(write_pipeline_model_card)

    def export_models(self) -> None:
        """``pipeline/``: the whole RadioDiffPipeline (the frozen VAE included), the EMA weights as the denoiser."""
        with staged_directory(self.output_dir / "pipeline") as pipeline_dir:
            self.pipeline().save_pretrained(pipeline_dir)


def build_ldm_trainer(config: LDMConfig) -> LDMTrainer:
    """The second stage's trainer on every process, with accelerate, seeds and data set up."""
    return LDMTrainer.build(config)


def train_ldm(config: LDMConfig, resume: str | None = None, overwrite: bool = False) -> Path:
    """Train the second stage described by ``config``; returns the output folder (see :func:`.trainer.run_training`)."""
    return run_training(LDMTrainer, config, resume, overwrite)
