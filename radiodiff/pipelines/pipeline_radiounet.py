"""RadioUNet as a diffusers pipeline: building map + transmitter -> radio map in one deterministic pass.

The same call and output as ``RadioDiffPipeline``, so that whatever runs one runs the other. This file ships verbatim
in every saved RadioUNet pipeline folder (``pipeline_radiounet.py``), beside ``radio_map_pipeline_utils.py``, which
it imports, and the model's code (``unet/radiounet.py``), so that diffusers alone loads the folder with
``DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)``. It therefore imports only torch, diffusers,
the standard library and that module.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from diffusers import DiffusionPipeline, ImagePipelineOutput
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.image_processor import VaeImageProcessor
from diffusers.models.modeling_utils import ModelMixin

from .radio_map_pipeline_utils import MapInput, ShippedCodeMixin, check_num_inference_steps, prepare_conditions

OUTPUT_TYPES = ("pil", "np", "pt")


class RadioUNetPipeline(ShippedCodeMixin, DiffusionPipeline):
    r"""Radio maps from building maps and transmitter positions, by RadioUNet (a U-Net, or two in cascade).

    One forward pass of the model: no noise, no steps. The call takes ``RadioDiffPipeline``'s arguments; those of
    sampling (``num_inference_steps``, ``generator``) are accepted and change nothing, those that only a sampler
    could honour (``latents``, ``eta``, a step callback, ``output_type="latent"``) are refused.

    Args:
        unet (`RadioUNetModel`): the model; its config's ``sample_size`` is the map size.
    """

    model_cpu_offload_seq = "unet"
    _callback_tensor_inputs: list[str] = []

    def __init__(self, unet: ModelMixin):
        super().__init__()
        self.register_modules(unet=unet)
        # the model predicts gain on [0, 1] itself: nothing to denormalise
        self.image_processor = VaeImageProcessor(do_normalize=False)

    @property
    def sample_size(self) -> int:
        """The side of the maps this pipeline generates (and takes conditions of)."""
        return self.unet.config.sample_size

    def prepare_conditions(
        self, buildings: MapInput, transmitter: MapInput | tuple[int, int] | Sequence[tuple[int, int]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The conditions as checked float32 (B, 1, H, W) tensors on [0, 1].

        ``transmitter`` is a map with one lit pixel per map, or ``(x, y)`` pixel coordinates (one pair per map).
        """
        return prepare_conditions(buildings, transmitter, self.sample_size, "the model's sample_size")

    @staticmethod
    def check_inputs(
        num_inference_steps: int | None,
        num_images_per_prompt: int,
        latents: torch.Tensor | None,
        output_type: str,
        eta: float | None,
        callback_on_step_end: Any,
    ) -> None:
        """One ``ValueError`` line for the first call setting this pipeline cannot take."""
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type: {output_type!r}; expected 'pil', 'np' or 'pt' (RadioUNet has no latents)")
        if num_inference_steps is not None:
            check_num_inference_steps(num_inference_steps, "num_inference_steps")
        if not isinstance(num_images_per_prompt, int) or num_images_per_prompt < 1:
            raise ValueError(f"num_images_per_prompt: {num_images_per_prompt!r}; expected an integer >= 1")
        refused = {"latents": latents, "eta": eta, "callback_on_step_end": callback_on_step_end}
        for name, value in refused.items():
            if value is not None:
                raise ValueError(f"{name}: given; RadioUNet maps in one pass, without noise or steps: expected None")

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
        r"""Predict radio maps.

        Args:
            buildings: building maps (1 = building, 0 = free space), in any form ``RadioDiffPipeline`` takes:
                tensors, numpy arrays (channel-last too), mode L PIL images, 8-bit maps, or a list of these.
            transmitter: transmitter maps with exactly one lit pixel each, or ``(x, y)`` pixel coordinates, or a
                list of them; one on a building pixel is logged as a warning.
            num_inference_steps (`int`, *optional*): accepted for ``RadioDiffPipeline``'s call and ignored: one
                pass, whatever the value (checked to be an integer >= 1 when given).
            num_images_per_prompt (`int`, defaults to 1): maps per input; the output holds
                ``B * num_images_per_prompt`` maps, input 0's first, and a deterministic model's copies are equal.
            generator (`torch.Generator` or a list of them, *optional*): accepted and unused: nothing is drawn.
            latents: refused (no noise to start from); must be None.
            output_type (`str`, defaults to `"pil"`): `"pil"` (mode L images), `"np"` (B, H, W, 1) or `"pt"`
                (B, 1, H, W), all on [0, 1]: the model's gain clamped to [0, 1].
            return_dict (`bool`, defaults to `True`): return an [`~diffusers.ImagePipelineOutput`] instead of a tuple.
            eta, callback_on_step_end: refused (no sampler, no steps); must be None.
            callback_on_step_end_tensor_inputs: accepted for ``RadioDiffPipeline``'s call and ignored.
        """
        self.check_inputs(num_inference_steps, num_images_per_prompt, latents, output_type, eta, callback_on_step_end)
        device = self._execution_device
        buildings, transmitter = self.prepare_conditions(buildings, transmitter)
        gain = self.unet(buildings.to(device, self.unet.dtype), transmitter.to(device, self.unet.dtype)).sample
        gain = gain.clamp(0.0, 1.0).repeat_interleave(num_images_per_prompt, dim=0)
        radio_maps = self.image_processor.postprocess(gain, output_type=output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (radio_maps,)
        return ImagePipelineOutput(images=radio_maps)
