"""Direct latent regression as a diffusers scheduler: one step that takes the denoiser's prediction as the result.

The denoiser is given a zero latent at timestep 0 beside the condition features and predicts the clean latent in
one pass; there is no noise and no process. The scheduler exists so that the same pipeline, folder layout and
loaders serve this formulation as the diffusion ones: ``init_noise_sigma`` 0 turns the pipeline's starting noise
into the zero latent, and ``step`` returns the prediction.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput


@dataclass
class RegressionSchedulerOutput(BaseOutput):
    """What the one step returns.

    Args:
        prev_sample (`torch.Tensor`): the predicted clean latent, the pipeline's result.
        pred_original_sample (`torch.Tensor`): the same prediction, as diffusers' schedulers name it.
    """

    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor


class RegressionScheduler(SchedulerMixin, ConfigMixin):
    r"""One denoiser call at timestep 0 on a zero latent; its output is the clean latent.

    ``set_timesteps`` takes any step count and gives the one timestep, so that a pipeline's or an evaluation's
    step count applies to every formulation; the map costs one denoiser call whatever it is.
    """

    config_name = "scheduler_config.json"
    order = 1
    # the pipeline's starting latents times 0: the denoiser's latent input is zero, as in training
    init_noise_sigma = 0.0

    @register_to_config
    def __init__(self):
        self.num_inference_steps: int | None = None
        self.timesteps = torch.zeros(1)

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        """The single timestep 0, whatever ``num_inference_steps`` (an integer >= 1)."""
        if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(f"num_inference_steps: {num_inference_steps!r}; expected an integer >= 1")
        self.num_inference_steps = num_inference_steps
        self.timesteps = torch.zeros(1, device=device)

    def scale_model_input(self, sample: torch.Tensor, timestep: float | torch.Tensor | None = None) -> torch.Tensor:
        """The denoiser's latent input: the (zero) sample as it is."""
        return sample

    def step(
        self,
        model_output: torch.Tensor,
        timestep: float | torch.Tensor,
        sample: torch.Tensor,
        generator: torch.Generator | list[torch.Generator] | None = None,
        return_dict: bool = True,
    ) -> RegressionSchedulerOutput | tuple[torch.Tensor, torch.Tensor]:
        r"""The denoiser's prediction as the result.

        Args:
            model_output (`torch.Tensor`): the predicted clean latent, shaped like ``sample``.
            timestep (`float` or `torch.Tensor`): the scheduler's one timestep.
            sample (`torch.Tensor`): the zero latent the denoiser was given.
            generator (`torch.Generator`, *optional*): unused: the step draws nothing.
            return_dict (`bool`, defaults to `True`): return a [`RegressionSchedulerOutput`] rather than a tuple.
        """
        if model_output.shape != sample.shape:
            raise ValueError(
                f"model_output: shape {tuple(model_output.shape)}; expected the clean latent, shaped like the "
                f"sample {tuple(sample.shape)}"
            )
        if not return_dict:
            return model_output, model_output
        return RegressionSchedulerOutput(prev_sample=model_output, pred_original_sample=model_output)
