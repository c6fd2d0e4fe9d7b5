"""The diffusion processes of the second stage, as diffusers schedulers.

A pipeline's formulation is the class of its scheduler (``RadioDiffPipeline.formulation``): ``"radiodiff"`` (RadioDiff's decoupled process, the
denoiser predicts C and eps) or ``"flow_matching"`` (diffusers' ``FlowMatchEulerDiscreteScheduler``, the denoiser
predicts the velocity ``noise - x0``).
"""

from __future__ import annotations

import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from .scheduling_radiodiff import RadioDiffScheduler, RadioDiffSchedulerOutput, check_eta

FORMULATIONS = {"radiodiff": RadioDiffScheduler, "flow_matching": FlowMatchEulerDiscreteScheduler}


def build_scheduler(formulation: str) -> SchedulerMixin:
    """The scheduler of ``formulation`` with its default settings."""
    if formulation not in FORMULATIONS:
        raise ValueError(f"formulation: {formulation!r}; expected one of {sorted(FORMULATIONS)}")
    return FORMULATIONS[formulation]()


def flow_matching_noisy_sample(
    original_samples: torch.Tensor, noise: torch.Tensor, sigmas: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flow matching's training input and target: ``x = sigma noise + (1 - sigma) x0`` and ``v = noise - x0``.

    ``sigmas`` in [0, 1], one per sample; the denoiser's timestep is ``sigmas * num_train_timesteps``, as
    ``FlowMatchEulerDiscreteScheduler`` gives it at sampling.
    """
    sigma = sigmas.to(original_samples).reshape(-1, *(1,) * (original_samples.ndim - 1))
    return sigma * noise + (1.0 - sigma) * original_samples, noise - original_samples


__all__ = [
    "FORMULATIONS",
    "RadioDiffScheduler",
    "RadioDiffSchedulerOutput",
    "build_scheduler",
    "check_eta",
    "flow_matching_noisy_sample",
]
