"""RadioDiff's second stage as a diffusers pipeline: building map + transmitter -> radio map.

This file ships verbatim in every saved pipeline folder (``pipeline_radiodiff.py``, named in ``model_index.json``),
beside ``radio_map_pipeline_utils.py``, which it imports, and the code of the components that are not diffusers
classes, so that diffusers alone loads the folder with ``DiffusionPipeline.from_pretrained(folder,
trust_remote_code=True)``. It therefore imports only torch, diffusers, the standard library and that module.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Sequence

import torch
from diffusers import AutoencoderKL, DiffusionPipeline, ImagePipelineOutput, UNet2DModel
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.image_processor import VaeImageProcessor
from diffusers.models.modeling_utils import ModelMixin
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor

from .radio_map_pipeline_utils import (
    MapInput,
    ShippedCodeMixin,
    check_num_inference_steps,
    prepare_conditions,
)

# the sampling steps of a pipeline whose folder does not record its own (saved before they were recorded)
DEFAULT_NUM_INFERENCE_STEPS = 5


class RadioDiffPipeline(ShippedCodeMixin, DiffusionPipeline):
    r"""Radio maps from building maps and transmitter positions, generated in a VAE's latent space (or, without a
    VAE, on the maps themselves: a pixel-space denoiser).

    The formulation is the scheduler's: `RadioDiffScheduler` runs RadioDiff's decoupled process (the UNet
    predicts C and eps), diffusers' `FlowMatchEulerDiscreteScheduler` runs flow matching (the UNet predicts the
    velocity), `RegressionScheduler` takes the UNet's one prediction of the clean latent. The pipeline asks the scheduler what it needs in diffusers' terms: ``step`` takes the UNet's whole
    output (``outputs_per_latent_channel`` predictions per latent channel, 1 when the scheduler does not say),
    takes ``eta`` when ``step`` has that parameter, and ``init_noise_sigma`` and ``scale_model_input`` give the
    starting latents and the UNet's input where the scheduler has them.

    Args:
        vae ([`~diffusers.AutoencoderKL`], *optional*): the first stage; its config's ``scaling_factor``/
            ``shift_factor`` take latents to the diffusion stage's scale and back. None for a pixel-space denoiser,
            whose "latents" are the maps on [-1, 1].
        unet ([`~diffusers.UNet2DModel`] or `RadioUNetDenoiser`): the denoiser, on the noisy latent concatenated with
            the condition features; its ``sample_size`` times the condition encoder's ``downsampling_factor`` is the
            map size.
        condition_encoder (`RadioMapConditionEncoder`): building and transmitter maps -> features.
        scheduler ([`~diffusers.SchedulerMixin`]): the formulation's scheduler (``radiodiff.schedulers.FORMULATIONS``).
        default_num_inference_steps (`int`, defaults to 5): the sampling steps of a call that gives none: the ones
            the run was configured and evaluated with (its ``diffusion.sampling_steps``); saved in
            ``model_index.json``.
    """

    model_cpu_offload_seq = "condition_encoder->unet->vae"
    _callback_tensor_inputs = ["latents"]
    _optional_components = ["vae"]

    def __init__(
        self,
        vae: AutoencoderKL | None,
        unet: ModelMixin,
        condition_encoder: ModelMixin,
        scheduler: SchedulerMixin,
        default_num_inference_steps: int = DEFAULT_NUM_INFERENCE_STEPS,
    ):
        super().__init__()
        check_num_inference_steps(default_num_inference_steps, "default_num_inference_steps")
        self.register_modules(vae=vae, unet=unet, condition_encoder=condition_encoder, scheduler=scheduler)
        self.register_to_config(default_num_inference_steps=default_num_inference_steps)
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1) if vae is not None else 1
        self.image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor)
        self._check_components()

    @property
    def sample_size(self) -> int:
        """The side of the maps this pipeline generates (and takes conditions of)."""
        return self.unet.config.sample_size * self.condition_encoder.config.downsampling_factor

    @property
    def latent_channels(self) -> int:
        """The channels of what the denoiser denoises: the VAE's latent, or in pixel space the map."""
        outputs = getattr(self.scheduler, "outputs_per_latent_channel", 1)
        return self.vae.config.latent_channels if self.vae is not None else self.unet.config.out_channels // outputs

    def _check_components(self) -> None:
        latent_channels = self.latent_channels
        condition_channels = self.condition_encoder.config.out_channels
        if self.condition_encoder.config.downsampling_factor != self.vae_scale_factor:
            raise ValueError(
                f"condition_encoder: downsampling_factor {self.condition_encoder.config.downsampling_factor}; "
                f"expected the VAE's {self.vae_scale_factor} (1 without a VAE)"
            )
        if self.vae is not None and self.vae.config.sample_size != self.sample_size:
            raise ValueError(
                f"unet: sample_size {self.unet.config.sample_size} makes {self.sample_size}x{self.sample_size} maps; "
                f"expected the VAE's {self.vae.config.sample_size} over its downsampling factor {self.vae_scale_factor}"
            )
        if self.unet.config.in_channels != latent_channels + condition_channels:
            raise ValueError(
                f"unet: in_channels {self.unet.config.in_channels}; expected {latent_channels} latent + "
                f"{condition_channels} condition channels = {latent_channels + condition_channels}"
            )
        # RadioDiff's UNet stacks C and eps along the channels; diffusers' schedulers take one prediction
        outputs = getattr(self.scheduler, "outputs_per_latent_channel", 1)
        if self.unet.config.out_channels != outputs * latent_channels:
            raise ValueError(
                f"unet: out_channels {self.unet.config.out_channels}; the scheduler {type(self.scheduler).__name__} "
                f"takes {outputs} prediction(s) per latent channel, {outputs * latent_channels} for "
                f"{latent_channels} latent channels"
            )

    # ---- saving and loading with the code ---------------------------------------------------------------------

    def prepare_conditions(
        self, buildings: MapInput, transmitter: MapInput | tuple[int, int] | Sequence[tuple[int, int]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The conditions as checked float32 (B, 1, H, W) tensors on [0, 1].

        ``transmitter`` is a map with one lit pixel per map, or ``(x, y)`` pixel coordinates (one pair per map).
        """
        return prepare_conditions(buildings, transmitter, self.sample_size, "the pipeline's map size")

    def check_inputs(
        self,
        num_inference_steps: int,
        num_images_per_prompt: int,
        output_type: str,
        eta: float | None,
        callback_on_step_end_tensor_inputs: Sequence[str],
    ) -> None:
        """One ``ValueError`` line for the first call setting this pipeline cannot take."""
        if output_type not in ("pil", "np", "pt", "latent"):
            raise ValueError(f"output_type: {output_type!r}; expected 'pil', 'np', 'pt' or 'latent'")
        check_num_inference_steps(num_inference_steps, "num_inference_steps")
        if not isinstance(num_images_per_prompt, int) or num_images_per_prompt < 1:
            raise ValueError(f"num_images_per_prompt: {num_images_per_prompt!r}; expected an integer >= 1")
        if eta is not None and not self._scheduler_takes_eta():
            raise ValueError(
                f"eta: {eta}; this pipeline's scheduler ({type(self.scheduler).__name__}) draws no noise to share out: "
                "only RadioDiff's sampler takes eta"
            )
        unknown = [name for name in callback_on_step_end_tensor_inputs if name not in self._callback_tensor_inputs]
        if unknown:
            raise ValueError(
                f"callback_on_step_end_tensor_inputs: {unknown}; expected names among {self._callback_tensor_inputs}"
            )

    def _scheduler_takes_eta(self) -> bool:
        # diffusers' pipelines ask the same of their schedulers (prepare_extra_step_kwargs)
        return "eta" in inspect.signature(self.scheduler.step).parameters

    def prepare_latents(
        self,
        batch_size: int,
        generator: torch.Generator | list[torch.Generator] | None,
        latents: torch.Tensor | None,
        device: torch.device,
    ) -> torch.Tensor:
        """The starting latents: ``latents`` when given (checked against the shape it must have), else drawn, times
        the scheduler's ``init_noise_sigma`` (flow matching's scheduler has none: its noise starts at 1)."""
        latent_size = self.unet.config.sample_size
        shape = (batch_size, self.latent_channels, latent_size, latent_size)
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=self.unet.dtype)
        elif tuple(latents.shape) != shape:
            raise ValueError(
                f"latents: shape {tuple(latents.shape)}; expected {shape}, (maps x num_images_per_prompt, the VAE's "
                "latent_channels, the unet's sample_size twice; without a VAE the map's channels and size)"
            )
        return latents.to(device=device, dtype=self.unet.dtype) * getattr(self.scheduler, "init_noise_sigma", 1.0)

    @torch.no_grad()
    def __call__(
        self,
        buildings: MapInput,
        transmitter: MapInput | tuple[int, int] | Sequence[tuple[int, int]],
        num_inference_steps: int | None = None,
        num_images_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        eta: float | None = None,
        callback_on_step_end: Callable[..., dict[str, Any]] | PipelineCallback | MultiPipelineCallbacks | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
    ) -> ImagePipelineOutput | tuple:
        r"""Generate radio maps.

        Args:
            buildings: building maps (1 = building, 0 = free space): tensors or arrays shaped (H, W), (1, H, W) or
                (B, 1, H, W), numpy arrays also channel-last (H, W, 1) or (B, H, W, 1) as ``output_type="np"``
                returns them, PIL images (mode L), or a list of these; 8-bit maps (0/255) are divided by 255.
            transmitter: transmitter maps with exactly one lit pixel each (same forms as ``buildings``), or
                ``(x, y)`` pixel coordinates, or a list of them. A transmitter on a building pixel is logged as a
                warning: the model was trained on transmitters in free space.
            num_inference_steps (`int`, *optional*): sampling steps (RadioDiff's sampler adds one short final
                denoiser call when its scheduler splits the last step; direct regression makes one call whatever
                the number); when None, the pipeline's ``default_num_inference_steps``, the steps its run was
                evaluated with.
            num_images_per_prompt (`int`, defaults to 1): maps per input, each from its own noise; the output holds
                ``B * num_images_per_prompt`` maps, input 0's first.
            generator (`torch.Generator` or a list of them, *optional*): the only source of randomness; same seed,
                same maps. A list holds one generator per output map.
            latents (`torch.Tensor`, *optional*): the starting noise, shaped (B * num_images_per_prompt,
                latent_channels, h, w) with h, w the map size over the VAE's downsampling factor; drawn from
                ``generator`` when None.
            output_type (`str`, defaults to `"pil"`): `"pil"` (mode L images), `"np"` (B, H, W, 1) or `"pt"`
                (B, 1, H, W), all on [0, 1]; or `"latent"`: the final latents before decoding, as diffusers'
                pipelines return them, in the diffusion stage's normalised space (``vae.decode`` takes
                ``latents / vae.config.scaling_factor + vae.config.shift_factor``; without a VAE, the maps on
                [-1, 1]).
            return_dict (`bool`, defaults to `True`): return an [`~diffusers.ImagePipelineOutput`] instead of a tuple.
            eta (`float`, *optional*): RadioDiff's sampler only: the share of the posterior noise each step draws
                (1: the original sampler, 0: deterministic); the scheduler's config ``eta`` when None.
            callback_on_step_end (`Callable`, `PipelineCallback` or `MultiPipelineCallbacks`, *optional*): called
                after each step as ``callback_on_step_end(pipe, step_index, timestep, callback_kwargs)`` with
                ``callback_kwargs`` holding the tensors named in ``callback_on_step_end_tensor_inputs``; it returns
                a dict, whose ``"latents"`` (if any) replace the latents.
            callback_on_step_end_tensor_inputs (`list[str]`, defaults to `["latents"]`): names among
                ``pipe._callback_tensor_inputs``.
        """
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        if num_inference_steps is None:
            num_inference_steps = self.config.default_num_inference_steps
        self.check_inputs(num_inference_steps, num_images_per_prompt, output_type, eta,
                          callback_on_step_end_tensor_inputs)
        device = self._execution_device
        buildings, transmitter = self.prepare_conditions(buildings, transmitter)
        condition = self.condition_encoder(
            buildings.to(device, self.condition_encoder.dtype), transmitter.to(device, self.condition_encoder.dtype)
        ).to(self.unet.dtype)
        condition = condition.repeat_interleave(num_images_per_prompt, dim=0)
        latents = self.prepare_latents(condition.shape[0], generator, latents, device)

        step_options = {"eta": eta} if eta is not None else {}
        # flow matching's scheduler has no scale_model_input: its UNet takes the latents as they are
        scale_model_input = getattr(self.scheduler, "scale_model_input", lambda sample, timestep: sample)
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        for step_index, timestep in enumerate(self.progress_bar(self.scheduler.timesteps)):
            model_input = torch.cat([scale_model_input(latents, timestep), condition], dim=1)
            model_output = self.unet(model_input, timestep).sample
            latents = self.scheduler.step(model_output, timestep, latents, generator=generator, **step_options).prev_sample
            if callback_on_step_end is not None:
                step_tensors = {"latents": latents}  # what _callback_tensor_inputs names
                callback_kwargs = {name: step_tensors[name] for name in callback_on_step_end_tensor_inputs}
                latents = callback_on_step_end(self, step_index, timestep, callback_kwargs).pop("latents", latents)

        if output_type == "latent":
            radio_maps = latents
        elif self.vae is None:
            radio_maps = self.image_processor.postprocess(latents.float(), output_type=output_type)
        else:
            shift = getattr(self.vae.config, "shift_factor", None) or 0.0
            latents = (latents / self.vae.config.scaling_factor + shift).to(self.vae.dtype)
            radio_maps = self.image_processor.postprocess(self.vae.decode(latents).sample, output_type=output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (radio_maps,)
        return ImagePipelineOutput(images=radio_maps)

