"""RadioDiff's decoupled diffusion ("const SDE") as a diffusers scheduler.

Forward process, continuous time t in (0, 1]: ``x_t = x0 + C t + W_t`` with ``C = -x0`` and ``W`` a Brownian motion,
so ``x_t = (1 - t) x0 + sqrt(t) eps``. The denoiser predicts both ``C`` and ``eps``. Sampling walks t from 1 to 0
in steps of ``s``, each drawn from the Brownian-bridge posterior q(x_{t-s} | x_t, x0) with x0 and the noise
replaced by their predictions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor


@dataclass
class RadioDiffSchedulerOutput(BaseOutput):
    """What one sampling step returns.

    Args:
        prev_sample (`torch.Tensor`): x_{t-s}, the input of the next step (the clean sample after the last).
        pred_original_sample (`torch.Tensor`): x0_hat, the clean sample predicted at this step.
    """

    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor


def _per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A (B,) or scalar tensor shaped to broadcast against ``like`` (B, C, H, W)."""
    values = values.to(device=like.device, dtype=like.dtype)
    return values.reshape(values.shape + (1,) * (like.ndim - values.ndim))


def check_eta(eta: float) -> float:
    """``eta`` if it is in [0, 1]; otherwise a ValueError that names it (the one range check of eta)."""
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta: {eta}; expected a value in [0, 1] (1: the original sampler, 0: deterministic)")
    return eta


class RadioDiffScheduler(SchedulerMixin, ConfigMixin):
    r"""The sampler and forward process of RadioDiff's second stage.

    ``timesteps`` are what the denoiser is given (``t * num_train_timesteps``, as diffusers' flow-matching
    scheduler does with its sigmas); ``times`` are the continuous t they stand for. The diffusers API speaks
    ``timesteps``: ``step`` takes one of ``self.timesteps``, :meth:`add_noise` any in ``(0, num_train_timesteps]``.
    The training helpers speak the process's own t (:meth:`sample_times`, :meth:`add_noise_at_times`,
    :meth:`loss_weights`), so that training need not round t through ``t * 1000 / 1000``.
    The denoiser's output is ``C_hat`` and ``eps_hat`` stacked along the channels (``outputs_per_latent_channel``
    is 2), which ``step`` splits, as diffusers' ``DDPMScheduler`` splits a learned variance off its input.

    Args:
        num_train_timesteps (`int`, defaults to 1000): the scale from t in (0, 1] to the denoiser's timestep.
        t_min (`float`, defaults to 1e-4): the smallest t trained on, and the length of the split-off last step.
        split_last_step (`bool`, defaults to `True`): split the last of the N uniform steps into
            ``(1/N - t_min, t_min)``, as the original sampler's ``denoise=True`` does (N + 1 denoiser calls);
            ``False`` takes N equal steps.
        eta (`float`, defaults to 1.0): the share of the posterior's noise each step draws, as DDIM's eta:
            1 is the original sampler (the Brownian-bridge posterior), 0 a deterministic sampler that moves x_t
            to ``(1 - t') x0_hat + sqrt(t') eps_hat``; in between, the noise taken out of the step's
            ``eps_hat`` term is put back as fresh noise, so x_{t'} keeps the forward process's variance.
    """

    config_name = "scheduler_config.json"
    order = 1
    # the sampler starts from N(0, 1) at t = 1 and the denoiser takes x_t as it is (scale_model_input)
    init_noise_sigma = 1.0
    # what the pipeline reads to check that the UNet returns C_hat and eps_hat for each latent channel
    outputs_per_latent_channel = 2

    @register_to_config
    def __init__(
        self, num_train_timesteps: int = 1000, t_min: float = 1e-4, split_last_step: bool = True, eta: float = 1.0
    ):
        if not 0.0 < t_min < 1.0:
            raise ValueError(f"t_min: {t_min}; expected a value in (0, 1)")
        check_eta(eta)
        # empty until set_timesteps: step refuses timesteps it was not given
        self.num_inference_steps: int | None = None
        self.times = torch.empty(0, dtype=torch.float64)
        self.timesteps = torch.empty(0)

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        """N uniform steps of 1/N from t = 1 (the last one split in two when ``split_last_step``)."""
        if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(f"num_inference_steps: {num_inference_steps!r}; expected an integer >= 1")
        step = 1.0 / num_inference_steps
        if self.config.split_last_step and step <= self.config.t_min:
            raise ValueError(
                f"num_inference_steps: {num_inference_steps} makes steps of {step:g}, not longer than t_min "
                f"({self.config.t_min:g}) that the last step splits off; expected fewer steps"
            )
        times = [1.0 - i * step for i in range(num_inference_steps)]
        if self.config.split_last_step:
            times.append(self.config.t_min)
        self.num_inference_steps = num_inference_steps
        # float64 on the host: step sizes such as 0.2 - 1e-4 read back exactly
        self.times = torch.tensor(times, dtype=torch.float64)
        self.timesteps = (self.times * self.config.num_train_timesteps).to(device=device, dtype=torch.float32)

    def scale_model_input(self, sample: torch.Tensor, timestep: float | torch.Tensor | None = None) -> torch.Tensor:
        """The denoiser's input at ``timestep``: x_t itself (the process needs no input scaling)."""
        return sample

    def _index_of(self, timestep: float | torch.Tensor) -> int:
        matches = torch.isclose(self.timesteps, torch.as_tensor(timestep, dtype=torch.float32).to(self.timesteps))
        if not matches.any():
            raise ValueError(
                f"timestep {float(timestep):g} is not one of the scheduler's timesteps "
                f"{[round(float(v), 4) for v in self.timesteps]}; call set_timesteps and pass one of them"
            )
        return int(matches.nonzero()[0])

    def step(
        self,
        model_output: torch.Tensor,
        timestep: float | torch.Tensor,
        sample: torch.Tensor,
        generator: torch.Generator | list[torch.Generator] | None = None,
        return_dict: bool = True,
        eta: float | None = None,
    ) -> RadioDiffSchedulerOutput | tuple[torch.Tensor, torch.Tensor]:
        r"""One step from t to t - s.

        Args:
            model_output (`torch.Tensor`): the denoiser's output, ``C_hat`` and ``eps_hat`` stacked along the
                channels (:meth:`split_model_output`).
            timestep (`float` or `torch.Tensor`): one of ``self.timesteps``.
            sample (`torch.Tensor`): x_t.
            generator (`torch.Generator`, *optional*): the only source of the step's noise.
            return_dict (`bool`, defaults to `True`): return a [`RadioDiffSchedulerOutput`] rather than a tuple.
            eta (`float`, *optional*): this step's share of the posterior noise; the config's ``eta`` when None.
        """
        pred_c, pred_eps = self.split_model_output(model_output, sample)
        index = self._index_of(timestep)
        t = float(self.times[index])
        t_next = float(self.times[index + 1]) if index + 1 < len(self.times) else 0.0
        s = t - t_next
        eta = self.config.eta if eta is None else check_eta(eta)
        pred_original_sample = sample - pred_c * t - t**0.5 * pred_eps
        # x_t's noise sqrt(t) eps shrinks to sqrt(t_next - variance), the rest drawn afresh: with eta = 1 this is
        # the mean of the Brownian-bridge posterior q(x_{t-s} | x_t, x0) (eps coefficient s / sqrt(t)) and its
        # variance s t_next / t, with x0 and eps predicted
        variance = eta**2 * s * t_next / t
        eps_coefficient = t**0.5 - max(t_next - variance, 0.0) ** 0.5
        prev_sample = sample + s * pred_original_sample - eps_coefficient * pred_eps
        if t_next > 0.0 and variance > 0.0:
            noise = randn_tensor(sample.shape, generator=generator, device=sample.device, dtype=sample.dtype)
            prev_sample = prev_sample + variance**0.5 * noise
        if not return_dict:
            return prev_sample, pred_original_sample
        return RadioDiffSchedulerOutput(prev_sample=prev_sample, pred_original_sample=pred_original_sample)

    def split_model_output(
        self, model_output: torch.Tensor, sample: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(C_hat, eps_hat)``: the denoiser's output split in two along the channels, each shaped like ``sample``."""
        if model_output.shape[1] != 2 * sample.shape[1] or model_output.shape[2:] != sample.shape[2:]:
            raise ValueError(
                f"model_output: shape {tuple(model_output.shape)}; expected C_hat and eps_hat stacked along the "
                f"channels, 2 x the sample's {tuple(sample.shape[1:])}"
            )
        return model_output.chunk(2, dim=1)

    # ---- training ------------------------------------------------------------------------------------------

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """x_t at ``timesteps`` (B,) or one scalar, in the units of ``self.timesteps`` (t times num_train_timesteps)."""
        times = torch.as_tensor(timesteps) / self.config.num_train_timesteps
        return self.add_noise_at_times(original_samples, noise, times)

    def sample_times(
        self, batch_size: int, generator: torch.Generator | None = None, device: str | torch.device | None = None
    ) -> torch.Tensor:
        """Training times t ~ U(t_min, 1), one per sample, drawn from ``generator``."""
        uniform = torch.rand(batch_size, generator=generator, device=device)
        return self.config.t_min + (1.0 - self.config.t_min) * uniform

    def add_noise_at_times(
        self, original_samples: torch.Tensor, noise: torch.Tensor, times: torch.Tensor
    ) -> torch.Tensor:
        """x_t = (1 - t) x0 + sqrt(t) eps, with ``times`` the continuous t per sample (B,) or one scalar."""
        t = _per_sample(torch.as_tensor(times), original_samples)
        return (1.0 - t) * original_samples + t.sqrt() * noise

    @staticmethod
    def training_targets(original_samples: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The denoiser's targets ``(C, eps) = (-x0, noise)``."""
        return -original_samples, noise

    @staticmethod
    def loss_weights(times: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """RadioDiff's per-sample weights ``w1 = 2 exp(1 - t)`` on C and ``w2 = exp(sqrt(t))`` on eps."""
        return 2.0 * torch.exp(1.0 - times), torch.exp(times.sqrt())

    def __len__(self) -> int:
        return self.config.num_train_timesteps
