"""The diffusion processes of the second stage, as diffusers schedulers, and the formulations that train with them.

A formulation (:mod:`.formulations`) is what the denoiser learns and which scheduler samples with it:
``"radiodiff"`` (RadioDiff's decoupled process, :class:`RadioDiffScheduler`, the denoiser predicts C and eps) or
``"flow_matching"`` (diffusers' ``FlowMatchEulerDiscreteScheduler``, the denoiser predicts the velocity
``noise - x0``) or ``"regression"`` (:class:`RegressionScheduler`, the denoiser predicts the clean latent in one
pass). A saved pipeline's formulation is read off its scheduler (:func:`formulation_of`).
"""

from .formulations import (
    FORMULATIONS,
    FlowMatchingFormulation,
    Formulation,
    LatentRegressionFormulation,
    RadioDiffFormulation,
    TrainingPair,
    build_formulation,
    formulation_class,
    formulation_of,
)
from .scheduling_radiodiff import RadioDiffScheduler, RadioDiffSchedulerOutput, check_eta
from .scheduling_regression import RegressionScheduler, RegressionSchedulerOutput

__all__ = [
    "FORMULATIONS",
    "FlowMatchingFormulation",
    "Formulation",
    "LatentRegressionFormulation",
    "RadioDiffFormulation",
    "RadioDiffScheduler",
    "RadioDiffSchedulerOutput",
    "RegressionScheduler",
    "RegressionSchedulerOutput",
    "TrainingPair",
    "build_formulation",
    "check_eta",
    "formulation_class",
    "formulation_of",
]
