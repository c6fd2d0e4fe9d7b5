"""The condition encoder: building and transmitter maps in, features at the latent resolution out."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.resnet import ResnetBlock2D
from torch import nn


def transmitter_log_distance(transmitter: torch.Tensor) -> torch.Tensor:
    """log(1 + distance to the transmitter), in pixels, divided by its largest value on the grid: (B, 1, H, W).

    The transmitter is the map's centre of mass, so a one-pixel map gives that pixel. Path loss in free space
    grows with the log of the distance: this channel hands the encoder that shape instead of making it learn it.
    """
    height, width = transmitter.shape[-2:]
    weights = transmitter.flatten(1)
    weights = weights / weights.sum(dim=1, keepdim=True).clamp_min(torch.finfo(weights.dtype).tiny)
    rows = torch.arange(height, device=transmitter.device, dtype=transmitter.dtype)
    cols = torch.arange(width, device=transmitter.device, dtype=transmitter.dtype)
    grid_rows, grid_cols = torch.meshgrid(rows, cols, indexing="ij")
    tx_row = (weights * grid_rows.flatten()).sum(dim=1).reshape(-1, 1, 1, 1)
    tx_col = (weights * grid_cols.flatten()).sum(dim=1).reshape(-1, 1, 1, 1)
    distance = torch.hypot(grid_rows - tx_row, grid_cols - tx_col)
    return torch.log1p(distance) / math.log1p(math.hypot(height, width))


class RadioMapConditionEncoder(ModelMixin, ConfigMixin):
    r"""Building map and transmitter map -> condition features at the VAE's latent resolution.

    A lossless stem, then convolutions: the inputs (and the transmitter's log-distance channel) are folded
    space-to-depth (``pixel_unshuffle``) by ``downsampling_factor``, so each pixel of a factor x factor cell lands in
    its own channel and the one-pixel transmitter survives the downsampling wherever it sits in its cell. Residual
    blocks then mix the cells. No pretrained weights.

    Args:
        downsampling_factor (`int`, defaults to 4): map size / feature size; the VAE's downsampling factor.
        hidden_channels (`int`, defaults to 64): width of the residual blocks.
        num_res_blocks (`int`, defaults to 2): residual blocks after the stem.
        out_channels (`int`, defaults to 32): channels of the features.
        norm_num_groups (`int`, defaults to 8): groups of the GroupNorm layers; divides ``hidden_channels``.
        distance_channel (`bool`, defaults to `True`): add the transmitter's log-distance map as an input channel.
    """

    @register_to_config
    def __init__(
        self,
        downsampling_factor: int = 4,
        hidden_channels: int = 64,
        num_res_blocks: int = 2,
        out_channels: int = 32,
        norm_num_groups: int = 8,
        distance_channel: bool = True,
    ):
        super().__init__()
        if downsampling_factor < 1:
            raise ValueError(f"downsampling_factor: {downsampling_factor}; expected an integer >= 1")
        if hidden_channels % norm_num_groups:
            raise ValueError(
                f"hidden_channels ({hidden_channels}) is not divisible by norm_num_groups ({norm_num_groups})"
            )
        input_channels = (3 if distance_channel else 2) * downsampling_factor**2
        self.conv_in = nn.Conv2d(input_channels, hidden_channels, kernel_size=3, padding=1)
        self.blocks = nn.ModuleList(
            ResnetBlock2D(
                in_channels=hidden_channels, out_channels=hidden_channels, temb_channels=None, groups=norm_num_groups
            )
            for _ in range(num_res_blocks)
        )
        self.norm_out = nn.GroupNorm(norm_num_groups, hidden_channels)
        self.conv_out = nn.Conv2d(hidden_channels, out_channels, kernel_size=3, padding=1)

    def forward(self, buildings: torch.Tensor, transmitter: torch.Tensor) -> torch.Tensor:
        r"""Encode the conditions.

        Args:
            buildings (`torch.Tensor`): (B, 1, H, W), 1 on buildings and 0 elsewhere.
            transmitter (`torch.Tensor`): (B, 1, H, W), 1 at the transmitter's pixel and 0 elsewhere.

        Returns:
            `torch.Tensor`: (B, out_channels, H / downsampling_factor, W / downsampling_factor).
        """
        factor = self.config.downsampling_factor
        if buildings.shape != transmitter.shape or buildings.ndim != 4 or buildings.shape[1] != 1:
            raise ValueError(
                f"buildings {tuple(buildings.shape)} and transmitter {tuple(transmitter.shape)}: expected both "
                "shaped (B, 1, H, W)"
            )
        if buildings.shape[-2] % factor or buildings.shape[-1] % factor:
            raise ValueError(
                f"maps of {buildings.shape[-2]}x{buildings.shape[-1]}: expected sides divisible by the "
                f"downsampling factor {factor}"
            )
        inputs = [buildings, transmitter]
        if self.config.distance_channel:
            inputs.append(transmitter_log_distance(transmitter))
        hidden = self.conv_in(F.pixel_unshuffle(torch.cat(inputs, dim=1).to(self.dtype), factor))
        for block in self.blocks:
            hidden = block(hidden, None)
        return self.conv_out(F.silu(self.norm_out(hidden)))
