"""RadioDiff's second stage as a diffusers pipeline: building map + transmitter -> radio map.

This file ships verbatim in every saved pipeline folder (``pipeline_radiodiff.py``, named in ``model_index.json``),
beside the code of the components that are not diffusers classes, so that diffusers alone loads the folder with
``DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)``. It therefore imports only torch, diffusers,
numpy, PIL and the standard library.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import PIL.Image
import torch
from diffusers import AutoencoderKL, DiffusionPipeline, ImagePipelineOutput, UNet2DModel
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.image_processor import VaeImageProcessor
from diffusers.models.modeling_utils import ModelMixin
from diffusers.pipelines.pipeline_loading_utils import LOADABLE_CLASSES
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import DIFFUSERS_DYNAMIC_MODULE_NAME, logging
from diffusers.utils.dynamic_modules_utils import get_relative_imports
from diffusers.utils.torch_utils import randn_tensor

logger = logging.get_logger(__name__)

MapInput = torch.Tensor | np.ndarray | PIL.Image.Image | Sequence[Any]

# the sampling steps of a pipeline whose folder does not record its own (saved before they were recorded)
DEFAULT_NUM_INFERENCE_STEPS = 5


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


def _is_channel_last(array: np.ndarray) -> bool:
    """(H, W, 1) or (B, H, W, 1), as ``output_type="np"`` returns maps: a last axis of one channel after a map."""
    return array.ndim in (3, 4) and array.shape[-1] == 1 and array.shape[-3] != 1


def _one_map(value: Any, name: str) -> torch.Tensor:
    """One map or a batch of maps as float32 (B, 1, H, W); 8-bit and boolean maps are taken to [0, 1]."""
    if isinstance(value, PIL.Image.Image):
        if value.mode not in ("L", "1"):
            raise ValueError(f"{name}: a PIL image of mode {value.mode}; expected a 1-channel image (mode L or 1)")
        value = np.array(value)
    if isinstance(value, np.ndarray):
        if _is_channel_last(value):
            value = np.moveaxis(value, -1, -3)
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
        raise ValueError(
            f"{name}: shape {tuple(value.shape)}; expected one channel, (H, W), (1, H, W) or (B, 1, H, W) "
            "(numpy arrays also (H, W, 1) or (B, H, W, 1))"
        )
    return value


def _as_maps(value: MapInput, name: str) -> torch.Tensor:
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError(f"{name}: an empty list; expected at least one map")
        return torch.cat([_one_map(item, f"{name}[{i}]") for i, item in enumerate(value)])
    return _one_map(value, name)


class RadioDiffPipeline(DiffusionPipeline):
    r"""Radio maps from building maps and transmitter positions, generated in a VAE's latent space.

    The formulation is the scheduler's: `RadioDiffScheduler` runs RadioDiff's decoupled process (the UNet
    predicts C and eps), diffusers' `FlowMatchEulerDiscreteScheduler` runs flow matching (the UNet predicts the
    velocity), `RegressionScheduler` takes the UNet's one prediction of the clean latent. The pipeline asks the scheduler what it needs in diffusers' terms: ``step`` takes the UNet's whole
    output (``outputs_per_latent_channel`` predictions per latent channel, 1 when the scheduler does not say),
    takes ``eta`` when ``step`` has that parameter, and ``init_noise_sigma`` and ``scale_model_input`` give the
    starting latents and the UNet's input where the scheduler has them.

    Args:
        vae ([`~diffusers.AutoencoderKL`]): the first stage; its config's ``scaling_factor``/``shift_factor``
            take latents to the diffusion stage's scale and back, and its ``sample_size`` is the map size.
        unet ([`~diffusers.UNet2DModel`]): the denoiser, on the noisy latent concatenated with the condition features.
        condition_encoder (`RadioMapConditionEncoder`): building and transmitter maps -> features.
        scheduler ([`~diffusers.SchedulerMixin`]): the formulation's scheduler (``radiodiff.schedulers.FORMULATIONS``).
        default_num_inference_steps (`int`, defaults to 5): the sampling steps of a call that gives none: the ones
            the run was configured and evaluated with (its ``diffusion.sampling_steps``); saved in
            ``model_index.json``.
    """

    model_cpu_offload_seq = "condition_encoder->unet->vae"
    _callback_tensor_inputs = ["latents"]

    def __init__(
        self,
        vae: AutoencoderKL,
        unet: UNet2DModel,
        condition_encoder: ModelMixin,
        scheduler: SchedulerMixin,
        default_num_inference_steps: int = DEFAULT_NUM_INFERENCE_STEPS,
    ):
        super().__init__()
        _check_num_inference_steps(default_num_inference_steps, "default_num_inference_steps")
        self.register_modules(vae=vae, unet=unet, condition_encoder=condition_encoder, scheduler=scheduler)
        self.register_to_config(default_num_inference_steps=default_num_inference_steps)
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self.image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor)
        self._check_components()

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
        # RadioDiff's UNet stacks C and eps along the channels; diffusers' schedulers take one prediction
        outputs = getattr(self.scheduler, "outputs_per_latent_channel", 1)
        if self.unet.config.out_channels != outputs * latent_channels:
            raise ValueError(
                f"unet: out_channels {self.unet.config.out_channels}; the scheduler {type(self.scheduler).__name__} "
                f"takes {outputs} prediction(s) per latent channel, {outputs * latent_channels} for "
                f"{latent_channels} latent channels"
            )

    # ---- saving and loading with the code ---------------------------------------------------------------------

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> None:
        """diffusers' folder, plus the code that loads it with diffusers alone.

        ``pipeline_radiodiff.py`` (this file) goes to the folder's root and ``model_index.json``'s ``_class_name``
        becomes ``["pipeline_radiodiff", "RadioDiffPipeline"]``; each component that is not a diffusers class and
        whose module runs on its own (the condition encoder, RadioDiff's scheduler) gets its module file in its
        folder, named in ``model_index.json`` as ``[file stem, class]``: ``condition_encoder/condition_encoder.py``,
        ``scheduler/scheduling_radiodiff.py``. Re-saving a folder saved without its code adds the code.
        """
        super().save_pretrained(save_directory, **kwargs)
        folder = Path(save_directory)
        index = json.loads((folder / self.config_name).read_text())
        index["_class_name"] = [_ship_module_of(type(self), folder), type(self).__name__]
        for name in self.components:
            component = getattr(self, name)
            if index.get(name, [None])[0] not in (None, *LOADABLE_CLASSES) and _runs_on_its_own(type(component)):
                index[name] = [_ship_module_of(type(component), folder / name), type(component).__name__]
        (folder / self.config_name).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")

    @classmethod
    def load_config(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> Any:
        """``model_index.json``, its shipped code resolved to the installed package when this class is one's.

        In a process that imported this class from a package (``radiodiff``), the entries naming a folder's code
        (``["pipeline_radiodiff", "RadioDiffPipeline"]``, ``["condition_encoder", "RadioMapConditionEncoder"]``)
        and the module paths older folders recorded (``["radiodiff.models.condition_encoder", ...]``) name the
        package's own classes, so that the folder's code is never run and ``trust_remote_code`` is not needed. A
        class loaded from a folder's code leaves the entries to diffusers.
        """
        loaded = super().load_config(pretrained_model_name_or_path, **kwargs)
        package_name = cls.__module__.partition(".")[0]
        if package_name == DIFFUSERS_DYNAMIC_MODULE_NAME:
            return loaded
        package = importlib.import_module(package_name)
        config = loaded[0] if isinstance(loaded, tuple) else loaded
        if isinstance(config.get("_class_name"), list) and config["_class_name"][1] == cls.__name__:
            config["_class_name"] = cls.__name__
        for name, entry in config.items():
            is_component = isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], str)
            if is_component and entry[0] not in (None, *LOADABLE_CLASSES) and hasattr(package, entry[1]):
                # the defining module: diffusers finds the loading base class (ModelMixin, ...) in its namespace
                config[name] = [getattr(package, entry[1]).__module__, entry[1]]
        return loaded

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> RadioDiffPipeline:
        """A saved folder or a Hub repository, with this class and this package's component classes.

        With diffusers alone, load a folder that carries its code with
        ``DiffusionPipeline.from_pretrained(folder_or_repo, trust_remote_code=True)``.
        """
        package_class = cls.__module__.partition(".")[0] != DIFFUSERS_DYNAMIC_MODULE_NAME
        if package_class and not os.path.isdir(pretrained_model_name_or_path):
            # diffusers' download would import the repository's pipeline file: fetch the weights and configs only
            from huggingface_hub import snapshot_download

            hub_options = ("cache_dir", "revision", "token", "local_files_only", "force_download", "proxies")
            pretrained_model_name_or_path = snapshot_download(
                str(pretrained_model_name_or_path),
                allow_patterns=["*.json", "*/*.json", "*/*.safetensors"],
                **{key: kwargs[key] for key in hub_options if key in kwargs},
            )
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

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
        self._warn_of_transmitters_on_buildings(buildings, transmitter)
        return buildings, transmitter

    @staticmethod
    def _warn_of_transmitters_on_buildings(buildings: torch.Tensor, transmitter: torch.Tensor) -> None:
        # not refused: a map is still generated, but the training data has its transmitters in the streets
        for index, (building_map, transmitter_map) in enumerate(zip(buildings, transmitter)):
            y, x = (int(v) for v in transmitter_map[0].nonzero()[0])
            if building_map[0, y, x] >= 0.5:
                logger.warning(
                    f"transmitter: map {index} has its transmitter at (x={x}, y={y}), a building pixel; the model "
                    "was trained on transmitters in free space"
                )

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
        _check_num_inference_steps(num_inference_steps, "num_inference_steps")
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
        latent_size = self.vae.config.sample_size // self.vae_scale_factor
        shape = (batch_size, self.vae.config.latent_channels, latent_size, latent_size)
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=self.unet.dtype)
        elif tuple(latents.shape) != shape:
            raise ValueError(
                f"latents: shape {tuple(latents.shape)}; expected {shape}, (maps x num_images_per_prompt, the VAE's "
                "latent_channels, sample_size / its downsampling factor twice)"
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
                ``latents / vae.config.scaling_factor + vae.config.shift_factor``).
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
        else:
            shift = getattr(self.vae.config, "shift_factor", None) or 0.0
            latents = (latents / self.vae.config.scaling_factor + shift).to(self.vae.dtype)
            radio_maps = self.image_processor.postprocess(self.vae.decode(latents).sample, output_type=output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (radio_maps,)
        return ImagePipelineOutput(images=radio_maps)


def _check_num_inference_steps(value: Any, name: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name}: {value!r}; expected an integer >= 1")


def _runs_on_its_own(component_class: type) -> bool:
    """Whether the module of ``component_class`` imports none of its package's other modules (relative imports
    that a folder would have to carry too)."""
    return not get_relative_imports(inspect.getsourcefile(component_class))


def _ship_module_of(defined_class: type, folder: Path) -> str:
    """Copy the module file that defines ``defined_class`` into ``folder``; returns its stem, as
    ``model_index.json`` names it."""
    source = Path(inspect.getsourcefile(defined_class))
    shutil.copyfile(source, folder / source.name)
    return source.stem
