"""The denoiser (a diffusers ``UNet2DModel``, or RadioUNet's U-Net in pixel space) and the condition encoder,
built from named presets.

The UNet sees the noisy latent (or, in pixel space, the noisy map) concatenated with the condition features and
predicts what the formulation needs: ``(C, eps)`` stacked along the channels for RadioDiff's process, the velocity for flow matching, the
clean latent for direct regression. Its timestep is t (or sigma) times 1000 through sinusoidal ("positional")
embeddings: diffusers' "fourier" embedding would also divide the output by the timestep (the score-SDE
convention), which no target wants.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import UNet2DModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from .condition_encoder import RadioMapConditionEncoder
from .radiounet import PRESETS as RADIOUNET_PRESETS
from .radiounet import RadioUNetDenoiser

# the denoiser classes a preset (and a saved ConditionedDenoiser's ``unet_class``) may name
DENOISER_CLASSES: dict[str, type[ModelMixin]] = {"UNet2DModel": UNet2DModel, "RadioUNetDenoiser": RadioUNetDenoiser}
# each denoiser class's layers that read the noisy latent and write the prediction
UNET_EDGE_LAYERS = {"UNet2DModel": ("unet.conv_in", "unet.conv_out"),
                    "RadioUNetDenoiser": ("unet.unet.down_blocks.0.0", "unet.unet.head.1")}
_RADIOUNET_WIDTHS = {
    key.removeprefix("first_"): value for key, value in RADIOUNET_PRESETS["unet"].items()
    if key.startswith("first_") or key.endswith(("kernel_sizes", "pooling", "kernel_size"))
}

# What a trainer's config names. "paper" follows RadioDiff's UNet (base width 128, multipliers 1, 2, 4, 4 on a
# 64x64 latent) with attention at the two lowest resolutions; "tiny" runs on a CPU in tests and the quickstart;
# "radiounet" is RadioUNet's single U-Net (its "unet" preset's widths) as a denoiser, for pixel space
# (denoiser.space: pixel), where a UNet2DModel's full-resolution group norms cost 3-5x its step on a CPU. A preset's
# "unet_class" (a key of DENOISER_CLASSES) defaults to UNet2DModel.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {
        "unet": dict(
            block_out_channels=(128, 256, 512, 512),
            down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
            up_block_types=("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
            layers_per_block=2,
            attention_head_dim=64,
            norm_num_groups=32,
            time_embedding_type="positional",
        ),
        "condition_encoder": dict(hidden_channels=128, num_res_blocks=2, out_channels=64, norm_num_groups=32),
    },
    "tiny": {
        "unet": dict(
            block_out_channels=(32, 64),
            down_block_types=("DownBlock2D", "AttnDownBlock2D"),
            up_block_types=("AttnUpBlock2D", "UpBlock2D"),
            layers_per_block=1,
            attention_head_dim=16,
            norm_num_groups=8,
            time_embedding_type="positional",
        ),
        "condition_encoder": dict(hidden_channels=32, num_res_blocks=1, out_channels=64, norm_num_groups=8),
    },
    "radiounet": {
        "unet_class": "RadioUNetDenoiser",
        "unet": _RADIOUNET_WIDTHS,
        "condition_encoder": dict(hidden_channels=16, num_res_blocks=0, out_channels=8, norm_num_groups=8),
    },
}


def _preset(name: str) -> dict[str, dict[str, Any]]:
    if name not in PRESETS:
        raise ValueError(f"preset: {name!r}; expected one of {sorted(PRESETS)}")
    return PRESETS[name]


def build_condition_encoder(preset: str, downsampling_factor: int) -> RadioMapConditionEncoder:
    """The condition encoder of ``preset``, folding maps by the VAE's ``downsampling_factor``."""
    return RadioMapConditionEncoder(downsampling_factor=downsampling_factor, **_preset(preset)["condition_encoder"])


def build_denoiser(
    preset: str, latent_channels: int, condition_channels: int, outputs_per_latent_channel: int, sample_size: int
) -> UNet2DModel:
    """The ``UNet2DModel`` of ``preset`` that returns ``outputs_per_latent_channel`` predictions per latent channel.

    Args:
        preset: a key of :data:`PRESETS`.
        latent_channels: channels of the VAE's latent.
        condition_channels: channels of the condition features (the encoder's ``out_channels``).
        outputs_per_latent_channel: what the formulation predicts per latent channel
            (``Formulation.outputs_per_latent_channel()``: 2 for RadioDiff's C and eps, 1 for a velocity or x0).
        sample_size: the latent's side (map size / the VAE's downsampling factor).
    """
    if not isinstance(outputs_per_latent_channel, int) or outputs_per_latent_channel < 1:
        raise ValueError(f"outputs_per_latent_channel: {outputs_per_latent_channel!r}; expected an integer >= 1")
    settings = _preset(preset)
    return DENOISER_CLASSES[settings.get("unet_class", "UNet2DModel")](
        sample_size=sample_size,
        in_channels=latent_channels + condition_channels,
        out_channels=outputs_per_latent_channel * latent_channels,
        **settings["unet"],
    )


class ConditionedDenoiser(ModelMixin, ConfigMixin):
    r"""What the second stage trains, as one module: the condition encoder and the UNet on their concatenation.

    One module, so that one DDP wrapper, one optimizer and one EMA cover both; the trainer exports its two parts
    as the pipeline's ``condition_encoder`` and ``unet``.

    Args:
        unet_config (`dict`): the ``UNet2DModel`` config (see :func:`build_denoiser`).
        condition_encoder_config (`dict`): the ``RadioMapConditionEncoder`` config (see :func:`build_condition_encoder`).
        unet_class (`str`, defaults to `"UNet2DModel"`): the UNet's class, a key of ``DENOISER_CLASSES``.
    """

    # what `compile_repeated_blocks` compiles (regional compilation): every level of the UNet, whatever the preset
    # (RadioUNet's U-Net whole); the time embedding, the condition encoder and the UNet's input and output layers
    # stay eager
    _repeated_blocks = ("DownBlock2D", "AttnDownBlock2D", "UNetMidBlock2D", "AttnUpBlock2D", "UpBlock2D",
                        "RadioUNetStage")

    @register_to_config
    def __init__(
        self, unet_config: dict[str, Any], condition_encoder_config: dict[str, Any], unet_class: str = "UNet2DModel"
    ):
        super().__init__()
        if unet_class not in DENOISER_CLASSES:
            raise ValueError(f"unet_class: {unet_class!r}; expected one of {sorted(DENOISER_CLASSES)}")
        self.condition_encoder = RadioMapConditionEncoder.from_config(condition_encoder_config)
        self.unet = DENOISER_CLASSES[unet_class].from_config(unet_config)

    @property
    def edge_layers(self) -> tuple[str, ...]:
        """The layers that read the conditions and the noisy latent and write the prediction (name prefixes), which
        optimizers such as Muon leave to AdamW."""
        return ("condition_encoder.conv_in",) + UNET_EDGE_LAYERS[self.config.unet_class]

    @classmethod
    def from_preset(
        cls, preset: str, latent_channels: int, outputs_per_latent_channel: int, sample_size: int,
        downsampling_factor: int,
    ) -> "ConditionedDenoiser":
        """The preset's encoder and UNet for a VAE with ``latent_channels`` and ``downsampling_factor``."""
        encoder = build_condition_encoder(preset, downsampling_factor)
        unet = build_denoiser(preset, latent_channels, encoder.config.out_channels, outputs_per_latent_channel,
                              sample_size)
        return cls(unet_config=dict(unet.config), condition_encoder_config=dict(encoder.config),
                   unet_class=type(unet).__name__)

    def forward(
        self,
        noisy_latents: torch.Tensor,
        timesteps: torch.Tensor,
        buildings: torch.Tensor,
        transmitter: torch.Tensor,
        condition_keep: torch.Tensor | None = None,
    ) -> torch.Tensor:
        r"""The UNet's output on ``concat(noisy_latents, condition features)``.

        Args:
            noisy_latents (`torch.Tensor`): (B, latent_channels, h, w).
            timesteps (`torch.Tensor`): (B,), t (or sigma) times ``num_train_timesteps``.
            buildings, transmitter (`torch.Tensor`): (B, 1, H, W) on [0, 1].
            condition_keep (`torch.Tensor`, *optional*): (B, 1, 1, 1) of 0 and 1; 0 zeroes that sample's
                condition features (condition dropout).
        """
        condition = self.condition_encoder(buildings, transmitter)
        if condition_keep is not None:
            condition = condition * condition_keep.to(condition.dtype)
        return self.unet(torch.cat([noisy_latents, condition.to(noisy_latents.dtype)], dim=1), timesteps).sample
