"""RadioDiff's second stage as a diffusers pipeline: building map + transmitter -> radio map."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import PIL.Image
import torch
from diffusers import AutoencoderKL, DiffusionPipeline, ImagePipelineOutput, UNet2DModel
from diffusers.image_processor import VaeImageProcessor
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor

from ..models.condition_encoder import RadioMapConditionEncoder
from ..models.denoiser import OUTPUTS_PER_LATENT_CHANNEL
from ..models.vae import denormalize_latents, downsampling_factor
from ..schedulers import formulation_of

MapInput = torch.Tensor | np.ndarray | PIL.Image.Image | Sequence[Any]


def rasterize_transmitter(x: int, y: int, height: int, width: int) -> torch.Tensor:
    """A (1, height, width) transmitter map lit at column ``x``, row ``y`` (image coordinates, from the top left)."""
    if not (0 <= x < width and 0 <= y < height):
        raise ValueError(f"transmitter (x={x}, y={y}): outside the {width}x{height} map")
    transmitter = torch.zeros(1, height, width)
    transmitter[0, y, x] = 1.0
    return transmitter


def _is_coordinate(value: Any) -> bool:
    return (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
    )


def _one_map(value: Any, name: str) -> torch.Tensor:
    """One map or a batch of maps as float32 (B, 1, H, W); 8-bit and boolean maps are taken to [0, 1]."""
    if isinstance(value, PIL.Image.Image):
        if value.mode not in ("L", "1"):
            raise ValueError(f"{name}: a PIL image of mode {value.mode}; expected a 1-channel image (mode L or 1)")
        value = np.array(value)
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name}: got {type(value).__name__}; expected a tensor, a numpy array, a PIL image or a list")
    if value.dtype == torch.uint8:
        value = value.float() / 255.0
    value = value.float()
    if value.ndim == 2:
        value = value[None, None]
    elif value.ndim == 3:
        value = value[None]
    if value.ndim != 4 or value.shape[1] != 1:
        raise ValueError(f"{name}: shape {tuple(value.shape)}; expected one channel, (H, W), (1, H, W) or (B, 1, H, W)")
    return value


def _as_maps(value: MapInput, name: str) -> torch.Tensor:
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError(f"{name}: an empty list; expected at least one map")
        return torch.cat([_one_map(item, f"{name}[{i}]") for i, item in enumerate(value)])
    return _one_map(value, name)


class RadioDiffPipeline(DiffusionPipeline):
    r"""Radio maps from building maps and transmitter positions, by diffusion in a VAE's latent space.

    The formulation is the scheduler's class: [`~radiodiff.schedulers.RadioDiffScheduler`] runs RadioDiff's
    decoupled process (the UNet predicts C and eps), diffusers' `FlowMatchEulerDiscreteScheduler` runs flow
    matching (the UNet predicts the velocity).

    Args:
        vae ([`~diffusers.AutoencoderKL`]): the first stage; its config's ``scaling_factor``/``shift_factor``
            take latents to the diffusion stage's scale and back, and its ``sample_size`` is the map size.
        unet ([`~diffusers.UNet2DModel`]): the denoiser, on the noisy latent concatenated with the condition features.
        condition_encoder ([`~radiodiff.models.RadioMapConditionEncoder`]): building and transmitter maps -> features.
        scheduler ([`~diffusers.SchedulerMixin`]): `RadioDiffScheduler` or `FlowMatchEulerDiscreteScheduler`.
    """

    model_cpu_offload_seq = "condition_encoder->unet->vae"

    def __init__(
        self,
        vae: AutoencoderKL,
        unet: UNet2DModel,
        condition_encoder: RadioMapConditionEncoder,
        scheduler: SchedulerMixin,
    ):
        super().__init__()
        self.register_modules(vae=vae, unet=unet, condition_encoder=condition_encoder, scheduler=scheduler)
        self.vae_scale_factor = downsampling_factor(vae.config.block_out_channels)
        self.image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor)
        self._check_components()

    @property
    def formulation(self) -> str:
        """``"radiodiff"`` or ``"flow_matching"``, from the scheduler's class."""
        return formulation_of(self.scheduler)

    def _check_components(self) -> None:
        latent_channels = self.vae.config.latent_channels
        condition_channels = self.condition_encoder.config.out_channels
        if self.condition_encoder.config.downsampling_factor != self.vae_scale_factor:
            raise ValueError(
                f"condition_encoder: downsampling_factor {self.condition_encoder.config.downsampling_factor}; "
                f"expected the VAE's {self.vae_scale_factor}"
            )
        if self.unet.config.in_channels != latent_channels + condition_channels:
            raise ValueError(
                f"unet: in_channels {self.unet.config.in_channels}; expected {latent_channels} latent + "
                f"{condition_channels} condition channels = {latent_channels + condition_channels}"
            )
        expected_out = OUTPUTS_PER_LATENT_CHANNEL[self.formulation] * latent_channels
        if self.unet.config.out_channels != expected_out:
            raise ValueError(
                f"unet: out_channels {self.unet.config.out_channels}; the {self.formulation} formulation "
                f"expects {expected_out} for {latent_channels} latent channels"
            )

    def prepare_conditions(
        self, buildings: MapInput, transmitter: MapInput | tuple[int, int] | Sequence[tuple[int, int]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The conditions as checked float32 (B, 1, H, W) tensors on [0, 1].

        ``transmitter`` is a map with one lit pixel per map, or ``(x, y)`` pixel coordinates (one pair per map).
        """
        buildings = _as_maps(buildings, "buildings")
        size = self.vae.config.sample_size
        if tuple(buildings.shape[-2:]) != (size, size):
            raise ValueError(
                f"buildings: maps of {buildings.shape[-2]}x{buildings.shape[-1]}; expected {size}x{size}, the VAE's "
                "sample_size"
            )
        if buildings.min() < 0 or buildings.max() > 1:
            raise ValueError(
                f"buildings: values in [{buildings.min():g}, {buildings.max():g}]; expected [0, 1] (or an 8-bit image)"
            )
        if _is_coordinate(transmitter):
            transmitter = [transmitter]
        if isinstance(transmitter, (list, tuple)) and transmitter and all(map(_is_coordinate, transmitter)):
            transmitter = [rasterize_transmitter(int(x), int(y), size, size) for x, y in transmitter]
        transmitter = _as_maps(transmitter, "transmitter")
        if transmitter.shape[-2:] != buildings.shape[-2:]:
            raise ValueError(
                f"transmitter: maps of {transmitter.shape[-2]}x{transmitter.shape[-1]}; expected {size}x{size} "
                "like the buildings"
            )
        if transmitter.shape[0] != buildings.shape[0]:
            raise ValueError(
                f"batch mismatch: {buildings.shape[0]} building maps and {transmitter.shape[0]} transmitter maps"
            )
        lit = (transmitter != 0).flatten(1).sum(dim=1)
        for index, count in enumerate(lit.tolist()):
            if count != 1:
                raise ValueError(f"transmitter: map {index} has {count} lit pixels; expected exactly one")
        return buildings, transmitter

    @torch.no_grad()
    def __call__(
        self,
        buildings: MapInput,
        transmitter: MapInput | tuple[int, int] | Sequence[tuple[int, int]],
        num_inference_steps: int = 5,
        generator: torch.Generator | list[torch.Generator] | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        eta: float | None = None,
    ) -> ImagePipelineOutput | tuple:
        r"""Generate radio maps.

        Args:
            buildings: building maps (1 = building, 0 = free space): tensors or arrays shaped (H, W), (1, H, W) or
                (B, 1, H, W), PIL images (mode L), or a list of these; 8-bit maps (0/255) are divided by 255.
            transmitter: transmitter maps with exactly one lit pixel each (same forms as ``buildings``), or
                ``(x, y)`` pixel coordinates, or a list of them.
            num_inference_steps (`int`, defaults to 5): sampling steps (RadioDiff's sampler adds one short final
                denoiser call when its scheduler splits the last step).
            generator (`torch.Generator`, *optional*): the only source of randomness; same seed, same maps.
            output_type (`str`, defaults to `"pil"`): `"pil"` (mode L images), `"np"` (B, H, W, 1) or `"pt"`
                (B, 1, H, W), all on [0, 1].
            return_dict (`bool`, defaults to `True`): return an [`~diffusers.ImagePipelineOutput`] instead of a tuple.
            eta (`float`, *optional*): RadioDiff's sampler only: the share of the posterior noise each step draws
                (1: the original sampler, 0: deterministic); the scheduler's config ``eta`` when None.
        """
        if output_type not in ("pil", "np", "pt"):
            raise ValueError(f"output_type: {output_type!r}; expected 'pil', 'np' or 'pt'")
        if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(f"num_inference_steps: {num_inference_steps!r}; expected an integer >= 1")
        device = self._execution_device
        buildings, transmitter = self.prepare_conditions(buildings, transmitter)
        condition = self.condition_encoder(
            buildings.to(device, self.condition_encoder.dtype), transmitter.to(device, self.condition_encoder.dtype)
        ).to(self.unet.dtype)

        latent_size = self.vae.config.sample_size // self.vae_scale_factor
        shape = (buildings.shape[0], self.vae.config.latent_channels, latent_size, latent_size)
        latents = randn_tensor(shape, generator=generator, device=device, dtype=self.unet.dtype)

        predicts_c_and_eps = self.formulation == "radiodiff"
        if eta is not None and not predicts_c_and_eps:
            raise ValueError(f"eta: {eta}; only RadioDiff's sampler takes eta, and this pipeline's is flow matching")
        step_options = {"eta": eta} if eta is not None else {}
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        for timestep in self.progress_bar(self.scheduler.timesteps):
            model_output = self.unet(torch.cat([latents, condition], dim=1), timestep).sample
            if predicts_c_and_eps:
                model_output = model_output.chunk(2, dim=1)
            latents = self.scheduler.step(model_output, timestep, latents, generator=generator, **step_options).prev_sample

        latents = denormalize_latents(latents, self.vae.config).to(self.vae.dtype)
        radio_maps = self.vae.decode(latents).sample
        radio_maps = self.image_processor.postprocess(radio_maps, output_type=output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (radio_maps,)
        return ImagePipelineOutput(images=radio_maps)
