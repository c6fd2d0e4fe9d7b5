"""The diffusion processes of the second stage, as diffusers schedulers, and the formulations that train with them.

A formulation (:mod:`.formulations`) is what the denoiser learns and which scheduler samples with it:
``"radiodiff"`` (RadioDiff's decoupled process, :class:`RadioDiffScheduler`, the denoiser predicts C and eps) or
``"flow_matching"`` (diffusers' ``FlowMatchEulerDiscreteScheduler``, the denoiser predicts the velocity
``noise - x0``). A saved pipeline's formulation is read off its scheduler (:func:`formulation_of`).
"""

from .formulations import (
    FORMULATIONS,
    FlowMatchingFormulation,
    Formulation,
    RadioDiffFormulation,
    TrainingPair,
    build_formulation,
    formulation_class,
    formulation_of,
)
from .scheduling_radiodiff import RadioDiffScheduler, RadioDiffSchedulerOutput, check_eta

__all__ = [
    "FORMULATIONS",
    "FlowMatchingFormulation",
    "Formulation",
    "RadioDiffFormulation",
    "RadioDiffScheduler",
    "RadioDiffSchedulerOutput",
    "TrainingPair",
    "build_formulation",
    "check_eta",
    "formulation_class",
    "formulation_of",
]
