"""The second stage's formulations: what the denoiser learns to predict, and the scheduler that samples with it.

A formulation is one :class:`Formulation` subclass, registered under its config name (``denoiser.formulation``)
by defining it. It builds its scheduler from the config's ``diffusion`` section, draws the training pair (the
denoiser's input, its timesteps in the scheduler's own ``timesteps`` units, and the named regression targets)
from the run's generator, splits the denoiser's output into those targets and computes the loss
(:mod:`radiodiff.losses.diffusion`), and says how many output channels per latent channel the denoiser needs and
how many denoiser calls a sample costs. The trainer, the evaluation and the model card ask it; the pipeline, whose
file ships alone in every saved folder, asks the scheduler the same questions in diffusers' terms (``step`` takes
the denoiser's whole output, ``eta`` is a parameter of ``step`` or not).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor

from ..config import DiffusionConfig
from ..losses import flow_matching_loss, latent_regression_loss, radiodiff_loss
from .scheduling_radiodiff import RadioDiffScheduler
from .scheduling_regression import RegressionScheduler

FORMULATIONS: dict[str, type[Formulation]] = {}


@dataclass
class TrainingPair:
    """What one training step gives the denoiser and compares its output with.

    Args:
        model_input (`torch.Tensor`): the denoiser's latent input, (B, C, h, w).
        timesteps (`torch.Tensor`): (B,), in the units of the scheduler's ``timesteps``.
        targets (`dict[str, torch.Tensor]`): the regression targets by name (``target_names``), each like the latent.
        loss_weights (`tuple[torch.Tensor, ...]`, *optional*): per-sample weights of the loss terms, where the
            formulation weights them by the pair's draw.
    """

    model_input: torch.Tensor
    timesteps: torch.Tensor
    targets: dict[str, torch.Tensor]
    loss_weights: tuple[torch.Tensor, ...] | None = None


class Formulation:
    """One way of training the second stage's denoiser and sampling with it.

    A subclass sets ``name`` (its config name), ``title``, ``scheduler_class`` and ``target_names`` (the denoiser
    predicts one latent-shaped tensor per name, stacked along the channels in that order), and writes
    :meth:`training_pair` and :meth:`loss`; it overrides :meth:`build_scheduler`, :meth:`function_evaluations`
    and ``takes_eta`` / ``takes_steps`` where its sampler differs from the defaults.

    Args:
        scheduler (`SchedulerMixin`): the formulation's scheduler, as built by :meth:`build_scheduler` or loaded
            with a pipeline.
        diffusion (`DiffusionConfig`, *optional*): the objective's settings; the defaults when None.
    """

    name: ClassVar[str]
    # how a model card names it
    title: ClassVar[str]
    scheduler_class: ClassVar[type[SchedulerMixin]]
    target_names: ClassVar[tuple[str, ...]]
    # whether the sampler draws fresh noise in a share set by eta (diffusion.eta, pipe(eta=...))
    takes_eta: ClassVar[bool] = False
    # whether the sampling step count changes the map (False: one pass whatever num_inference_steps says)
    takes_steps: ClassVar[bool] = True

    def __init__(self, scheduler: SchedulerMixin, diffusion: DiffusionConfig | None = None):
        self.scheduler = scheduler
        self.diffusion = diffusion or DiffusionConfig()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        FORMULATIONS[cls.name] = cls

    @classmethod
    def from_config(cls, diffusion: DiffusionConfig) -> Formulation:
        """The formulation with the scheduler and the objective of a run's ``diffusion`` section."""
        return cls(cls.build_scheduler(diffusion), diffusion)

    @classmethod
    def build_scheduler(cls, diffusion: DiffusionConfig) -> SchedulerMixin:
        """The scheduler the run samples with and exports in its pipeline."""
        return cls.scheduler_class()

    @classmethod
    def samples_with(cls, scheduler_class_name: str) -> bool:
        # by name: a scheduler loaded from a pipeline folder's code is a class of that module, not radiodiff's
        return scheduler_class_name == cls.scheduler_class.__name__

    @classmethod
    def outputs_per_latent_channel(cls) -> int:
        """The denoiser's output channels per latent channel: one per regression target."""
        return len(cls.target_names)

    def function_evaluations(self, num_inference_steps: int) -> int:
        """Denoiser calls per generated map at ``num_inference_steps`` sampling steps."""
        return num_inference_steps

    def split_output(self, model_output: torch.Tensor) -> dict[str, torch.Tensor]:
        """The denoiser's output as its predictions of the targets, by name."""
        return dict(zip(self.target_names, model_output.chunk(len(self.target_names), dim=1)))

    def training_pair(self, x0: torch.Tensor, generator: torch.Generator) -> TrainingPair:
        """The input, timesteps and targets for the clean normalised latents ``x0``; every draw from ``generator``."""
        raise NotImplementedError

    def loss(self, model_output: torch.Tensor, pair: TrainingPair) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The batch loss of the denoiser's (float32) output on ``pair``, and the scalars to log."""
        raise NotImplementedError


class RadioDiffFormulation(Formulation):
    """RadioDiff's decoupled process (:class:`RadioDiffScheduler`): the denoiser predicts C = -x0 and the noise."""

    name = "radiodiff"
    title = "RadioDiff (decoupled C and eps)"
    scheduler_class = RadioDiffScheduler
    target_names = ("C", "eps")
    takes_eta = True

    @classmethod
    def build_scheduler(cls, diffusion: DiffusionConfig) -> RadioDiffScheduler:
        return RadioDiffScheduler(split_last_step=diffusion.split_last_step, eta=diffusion.eta)

    def function_evaluations(self, num_inference_steps: int) -> int:
        # the split last step is one more denoiser call
        return num_inference_steps + int(self.scheduler.config.split_last_step)

    def training_pair(self, x0: torch.Tensor, generator: torch.Generator) -> TrainingPair:
        times = self.scheduler.sample_times(x0.shape[0], generator=generator, device=x0.device)
        noise = randn_tensor(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        target_c, target_eps = self.scheduler.training_targets(x0, noise)
        # x_t and the weights at the drawn t itself: t * 1000 / 1000 would round t (one ulp in ~2% of draws)
        return TrainingPair(
            model_input=self.scheduler.add_noise_at_times(x0, noise, times),
            timesteps=times * self.scheduler.config.num_train_timesteps,
            targets={"C": target_c, "eps": target_eps},
            loss_weights=self.scheduler.loss_weights(times) if self.diffusion.weighting_loss else None,
        )

    def loss(self, model_output: torch.Tensor, pair: TrainingPair) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        predicted = self.split_output(model_output)
        return radiodiff_loss(predicted["C"], predicted["eps"], pair.targets["C"], pair.targets["eps"],
                              pair.loss_weights, use_l1=self.diffusion.use_l1)


class FlowMatchingFormulation(Formulation):
    """Flow matching with diffusers' ``FlowMatchEulerDiscreteScheduler``: ``x = sigma noise + (1 - sigma) x0``,
    the denoiser predicts the velocity ``noise - x0`` (MSE), sampling takes Euler steps from sigma = 1."""

    name = "flow_matching"
    title = "flow matching"
    scheduler_class = FlowMatchEulerDiscreteScheduler
    target_names = ("velocity",)

    def training_pair(self, x0: torch.Tensor, generator: torch.Generator) -> TrainingPair:
        sigmas = torch.rand(x0.shape[0], generator=generator, device=x0.device)  # sigma ~ U(0, 1)
        noise = randn_tensor(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        sigma = sigmas.to(x0).reshape(-1, *(1,) * (x0.ndim - 1))
        # the scheduler's timesteps are its sigmas times num_train_timesteps
        timesteps = sigmas * self.scheduler.config.num_train_timesteps
        return TrainingPair(sigma * noise + (1.0 - sigma) * x0, timesteps, {"velocity": noise - x0})

    def loss(self, model_output: torch.Tensor, pair: TrainingPair) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return flow_matching_loss(self.split_output(model_output)["velocity"], pair.targets["velocity"])


class LatentRegressionFormulation(Formulation):
    """Direct latent regression (:class:`RegressionScheduler`): the denoiser maps the conditions to the clean latent
    in one pass (MSE), given a zero latent at timestep 0, so that the same UNet and condition encoder serve; what
    the VAE's latent space buys without diffusion. One denoiser call per map, whatever the step count."""

    name = "regression"
    title = "direct latent regression (one pass, no diffusion)"
    scheduler_class = RegressionScheduler
    target_names = ("x0",)
    takes_steps = False

    def function_evaluations(self, num_inference_steps: int) -> int:
        return 1

    def training_pair(self, x0: torch.Tensor, generator: torch.Generator) -> TrainingPair:
        # nothing to draw: the input is what the pipeline gives at sampling, its noise times init_noise_sigma (0)
        timesteps = torch.zeros(x0.shape[0], device=x0.device)
        return TrainingPair(torch.zeros_like(x0), timesteps, {"x0": x0})

    def loss(self, model_output: torch.Tensor, pair: TrainingPair) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return latent_regression_loss(self.split_output(model_output)["x0"], pair.targets["x0"])


def formulation_class(name: str) -> type[Formulation]:
    """The formulation registered as ``name``; a ValueError naming the known ones otherwise."""
    if name not in FORMULATIONS:
        raise ValueError(f"formulation: {name!r}; expected one of {', '.join(map(repr, FORMULATIONS))}")
    return FORMULATIONS[name]


def build_formulation(name: str, diffusion: DiffusionConfig | None = None) -> Formulation:
    """The formulation ``name`` with its scheduler built from ``diffusion`` (the defaults when None)."""
    return formulation_class(name).from_config(diffusion or DiffusionConfig())


def formulation_of(scheduler: SchedulerMixin | str) -> Formulation:
    """The formulation that samples with ``scheduler``, or, for a scheduler's class name as a pipeline folder's
    ``model_index.json`` records it, that formulation with its default scheduler."""
    name = scheduler if isinstance(scheduler, str) else type(scheduler).__name__
    for formulation in FORMULATIONS.values():
        if formulation.samples_with(name):
            if isinstance(scheduler, str):
                scheduler = formulation.build_scheduler(DiffusionConfig())
            return formulation(scheduler)
    raise ValueError(
        f"scheduler: {name}; expected the scheduler of a formulation: "
        + ", ".join(f"{cls.scheduler_class.__name__} ({cls.name})" for cls in FORMULATIONS.values())
    )
