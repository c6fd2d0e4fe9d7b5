"""RadioUNet, the supervised baseline, trained by the same loop as the second stage.

:class:`RadioUNetTrainer` adds to the shared loop of :mod:`.trainer` the :class:`~radiodiff.models.RadioUNetModel`
with its optimizer(s) and EMA, a squared-error step against the true map, the cascade's two phases, a sample sheet
and the export of a :class:`~radiodiff.pipelines.RadioUNetPipeline` to ``pipeline/`` (the call of the second
stage's pipeline, so that ``radiodiff evaluate``, ``generate``, ``compare`` and the card take either);
:func:`train_radiounet` runs it.

The phases are the original's: a cascade trains its first U-Net alone for ``train.first_unet_steps`` steps (phase
1), then its second on the first's output with the first frozen (phase 2). The phase is a function of the step, so a
resumed run continues in the phase it left. One optimizer holds every parameter: the frozen U-Net gets no gradient,
so Adam(W) and Muon leave it (and its weight decay) alone, and the second U-Net's moments start in phase 2 from zero,
as the original's fresh optimizer of its second phase does.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Iterator

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, KwargsHandler
from diffusers.training_utils import EMAModel
from torch.utils.data import Dataset

from ..config import RadioUNetConfig
from ..data import build_dataset
from ..hub import write_pipeline_model_card
from ..models import RadioUNetModel
from ..pipelines import RadioUNetPipeline
from .checkpoints import TrainedParts, staged_directory, stored_model_config
from .optim import build_optimizers
from .trainer import Trainer, TrainingError, run_training, trained_optimizers

# the layers that read the conditions or write the map, which Muon's authors leave to AdamW
EDGE_LAYERS = tuple(f"{unet}.{layer}." for unet in ("first_unet", "second_unet") for layer in ("down_blocks.0", "head"))


def check_data_fits_model(model: RadioUNetModel, item: dict[str, torch.Tensor], where: str) -> None:
    """The maps must be the size the model is configured for, which its pipeline checks its inputs against."""
    size = model.config.sample_size
    height, width = item["gain_map"].shape[-2:]
    if (height, width) != (size, size):
        raise TrainingError(
            f"{where}: maps of {height}x{width}, but the model is for {size}x{size} maps (model.sample_size, or its "
            f"preset's); set model.sample_size: {height} or data.resolution: {size}"
        )


class RadioUNetTrainer(Trainer):
    """RadioUNet (one U-Net, or the original's cascade of two) trained with a squared error on the true maps."""

    tracker_project = "radiodiff-radiounet"
    exported_folders = ("pipeline",)

    def __init__(self, config: RadioUNetConfig, accelerator: Accelerator, train_set: Dataset, val_set: Dataset):
        super().__init__(config, accelerator, train_set, val_set)
        self.model = self.parts.models["radiounet"]
        self.first_unet_steps = config.first_unet_steps()
        self.phase: int | None = None  # set by the first step: see :meth:`enter_phase`
        self.sample_items = self.spread_validation_items(config.train.num_sample_images)

    @classmethod
    def kwargs_handlers(cls, config: RadioUNetConfig) -> list[KwargsHandler]:
        # each phase leaves one U-Net of the cascade out of the loss: DDP must look for the parameters that had none
        return [DistributedDataParallelKwargs(find_unused_parameters=True)] if config.model.is_cascade() else []

    @classmethod
    def datasets(cls, config: RadioUNetConfig) -> tuple[Dataset, Dataset]:
        return (build_dataset(config.data, "train", with_conditions=True),
                build_dataset(config.data, "val", with_conditions=True))

    def build_trained_parts(self) -> TrainedParts:
        """The model, its optimizer(s) over every parameter and its EMA."""
        config, train = self.config, self.config.train
        model = RadioUNetModel.from_preset(config.model.preset, **config.model.overrides())
        for split, dataset in (("training", self.train_set), ("validation", self.val_set)):
            check_data_fits_model(model, dataset[0], f"data ({split} split)")
        optimizers = build_optimizers(list(model.named_parameters()), train, train.lr, EDGE_LAYERS)
        # every parameter still trainable here: DDP only ever syncs the parameters that require a gradient when it wraps
        models, optimizers = self.prepare({"radiounet": model}, trained_optimizers("radiounet", optimizers, train.lr))
        self.raw_model: RadioUNetModel = self.accelerator.unwrap_model(models["radiounet"])
        if train.compile:
            # each U-Net in place: its weights keep their names, in checkpoints and in the export
            for unet in self.trained_modules().values():
                unet.compile(dynamic=False)
        ema = None
        if train.use_ema:
            # the EMA copies the frozen U-Net's weights as they are (EMAModel's rule for parameters without a gradient):
            # the exported cascade's second U-Net is paired with the first it was trained on
            ema = EMAModel(self.raw_model.parameters(), decay=train.ema_decay, foreach=True,
                           model_cls=RadioUNetModel, model_config=self.raw_model.config)
            ema.to(self.accelerator.device)
        return TrainedParts(models, optimizers, ema)

    def trained_modules(self) -> dict[str, torch.nn.Module]:
        modules = {"first_unet": self.raw_model.first_unet}
        if self.raw_model.is_cascade:
            modules["second_unet"] = self.raw_model.second_unet
        return modules

    # ---- the step -------------------------------------------------------------------------------------------

    def phase_of(self, step: int) -> int:
        """The phase of optimizer step ``step`` (0-based): 1 trains the first U-Net, 2 the second."""
        return 1 if step < self.first_unet_steps else 2

    def enter_phase(self, phase: int) -> None:
        """Freeze the U-Net the phase does not train (a no-op when already in it)."""
        if phase != self.phase:
            self.raw_model.set_phase(phase)
            self.phase = phase
            trains = "the first U-Net" if phase == 1 else "the second U-Net on the frozen first's maps"
            self.runlog.note(f"phase {phase} at step {self.state.step + 1}: training {trains}")

    def train_step(self, batches: Iterator[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor] | None:
        self.enter_phase(self.phase_of(self.state.step))
        accumulation = self.config.train.gradient_accumulation_steps
        # checked once after every backward, not per loss: a mid-step host sync would stall a GPU's queue
        finite = torch.ones((), dtype=torch.bool, device=self.accelerator.device)
        total = torch.zeros((), device=self.accelerator.device)
        for micro_step in range(accumulation):
            batch = next(batches)
            # the data's gain maps are on [-1, 1]; the model predicts gain on [0, 1], the original's scale
            target = (batch["gain_map"] + 1) / 2
            sync = self.accelerator.no_sync(self.model) if micro_step < accumulation - 1 else contextlib.nullcontext()
            with sync:
                # a tuple: accelerate's mixed-precision wrapper rebuilds mappings, which RadioUNetOutput is
                sample, first_sample = self.model(
                    batch["buildings"], batch["transmitter"], first_only=self.phase == 1, return_dict=False
                )
                prediction = first_sample if self.phase == 1 else sample
                loss = torch.nn.functional.mse_loss(prediction.float(), target)
                finite &= torch.isfinite(loss)
                self.accelerator.backward(loss / accumulation)
            total += loss.detach() / accumulation
        if not self.all_finite(finite):
            self.discard_gradients()
            return None
        self.optimizer_steps(self.updates_of("radiounet"))
        self.update_ema(self.raw_model)
        return {"loss": total, "phase": torch.full_like(total, self.phase)}

    def progress_fields(self, values: dict[str, float]) -> dict[str, str]:
        return {"loss": f"{values['loss']:.4g}", "phase": str(int(values["phase"]))}

    def resume(self, path: Path) -> None:
        # a checkpoint of other widths would fail deep in torch's load_state_dict: name the first difference instead
        stored = stored_model_config(path, "radiounet")  # None in a checkpoint of another stage: the manifest says so
        if stored is not None:
            ours = json.loads(json.dumps(dict(self.raw_model.config)))  # tuples as lists, as the manifest holds them
            for key, value in ours.items():
                if not key.startswith("_") and key != "sample_size" and stored.get(key) != value:
                    raise TrainingError(
                        f"--resume {path}: its model has {key} {stored.get(key)}, where this run's has {value}; "
                        "expected a checkpoint of a run with this config's model section"
                    )
        super().resume(path)

    # ---- samples and export -----------------------------------------------------------------------------------

    def pipeline(self) -> RadioUNetPipeline:
        """The pipeline of the trained model: its EMA weights when the run keeps an EMA."""
        model = self.raw_model
        if self.parts.ema is not None:
            model = RadioUNetModel.from_config(self.raw_model.config).to(self.accelerator.device).eval()
            self.parts.ema.copy_to(model.parameters())
        pipeline = RadioUNetPipeline(unet=model)
        pipeline.set_progress_bar_config(disable=True)
        return pipeline

    def write_sample_sheet(self, path: Path, title: str) -> None:
        weights = "EMA weights" if self.parts.ema is not None else "weights"
        # in a cascade's phase 1 the maps come through a second U-Net that has not trained yet
        phase = f", phase {self.phase}" if self.raw_model.is_cascade else ""
        self.write_pipeline_sheet(self.pipeline(), self.raw_model, self.sample_items, path,
                                  f"{title}{phase} ({weights})")

    def export_models(self) -> None:
        """``pipeline/``: the RadioUNetPipeline with its code, the EMA weights as the model."""
        with staged_directory(self.output_dir / "pipeline") as pipeline_dir:
            self.pipeline().save_pretrained(pipeline_dir)

    def finish(self) -> None:
        """The exported pipeline on the validation split beside the physics baseline (``train.evaluate_at_end``),
        then the model card, and the upload when asked."""
        if self.config.train.evaluate_at_end:
            self.evaluate_exported_pipeline(num_inference_steps=None)
        self.publish(write_pipeline_model_card)


def build_radiounet_trainer(config: RadioUNetConfig) -> RadioUNetTrainer:
    """RadioUNet's trainer on every process, with accelerate, seeds and data set up."""
    return RadioUNetTrainer.build(config)


def train_radiounet(config: RadioUNetConfig, resume: str | None = None, overwrite: bool = False) -> Path:
    """Train the RadioUNet described by ``config``; returns the output folder (see :func:`.trainer.run_training`)."""
    return run_training(RadioUNetTrainer, config, resume, overwrite)
