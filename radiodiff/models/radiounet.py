"""RadioUNet (Levie, Yapar, Kutyniok, Caire, IEEE TWC 2021) as a diffusers model: RadioWNet, two U-Nets in cascade.

A reproduction of ``RadioWNet`` in the authors' ``lib/modules.py`` (github.com/RonLevie/RadioUNet) for its
no-measurement inputs (``RadioUNet_c``: buildings and transmitter). The first U-Net reads the two maps and predicts
the radio map; the second reads the same maps and the first's prediction, and refines it. At the original widths
(the ``"paper"`` preset) every convolution has the original's shape, in the original's order.

This file ships verbatim in every saved RadioUNet pipeline folder (``unet/radiounet.py``), so that diffusers alone
loads the folder: it imports only torch, diffusers and the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.unets.unet_2d import UNet2DOutput
from diffusers.utils import BaseOutput
from torch import nn

# The original's RadioWNet (inputs=2), read off lib/modules.py. Both U-Nets share the kernels and the poolings;
# "first" is layer00..layer5 / conv_up5..conv_up0 / conv_up00, "second" the same with a W in front.
_PAPER_LAYOUT: dict[str, Any] = dict(
    down_kernel_sizes=(3, 5, 5, 5, 5, 3, 5, 5, 5),
    down_pooling=(False, True, True, False, True, False, True, True, True),
    up_kernel_sizes=(4, 4, 4, 3, 6, 5, 6, 6),
    head_kernel_size=5,
)
# At 64x64, the original's layout without its two deepest levels: the bottleneck is 4x4, as the original's is at
# 256x256 (six poolings would leave 1x1, where a 5x5 convolution sees mostly padding).
_SMALL_LAYOUT: dict[str, Any] = dict(
    down_kernel_sizes=(3, 5, 5, 5, 5, 3, 5),
    down_pooling=(False, True, True, False, True, False, True),
    up_kernel_sizes=(4, 3, 6, 5, 6, 6),
    head_kernel_size=5,
)

PRESETS: dict[str, dict[str, Any]] = {
    # the original's widths at 256x256: 13,274,031 parameters (10,921,405 + 2,352,626), as the original's
    "paper": dict(
        sample_size=256,
        first_down_channels=(6, 40, 50, 60, 100, 100, 150, 300, 500),
        first_up_channels=(300, 150, 100, 100, 60, 50, 40, 20),
        first_head_channels=20,
        second_down_channels=(20, 30, 40, 50, 60, 70, 90, 110, 150),
        second_up_channels=(110, 90, 70, 60, 50, 40, 30, 20),
        second_head_channels=20,
        **_PAPER_LAYOUT,
    ),
    # a small cascade for the quickstart's 64x64 maps: 1,085,255 parameters (825,339 + 259,916), the original's
    # split between the two U-Nets
    "quickstart": dict(
        sample_size=64,
        first_down_channels=(8, 24, 32, 40, 64, 64, 96),
        first_up_channels=(64, 64, 40, 32, 24, 16),
        first_head_channels=16,
        second_down_channels=(12, 16, 20, 24, 32, 32, 48),
        second_up_channels=(32, 32, 24, 20, 16, 12),
        second_head_channels=12,
        **_SMALL_LAYOUT,
    ),
    # one U-Net, no cascade, 986,371 parameters at 64x64: the stronger baseline on a CPU budget, where the
    # cascade's second half costs time the first would rather train with
    "unet": dict(
        sample_size=64,
        first_down_channels=(16, 24, 32, 48, 64, 64, 128),
        first_up_channels=(64, 64, 48, 32, 24, 16),
        first_head_channels=16,
        second_down_channels=None,
        second_up_channels=None,
        second_head_channels=None,
        **_SMALL_LAYOUT,
    ),
}

PHASES = (1, 2)


def _conv_relu(in_channels: int, out_channels: int, kernel_size: int, pool: bool) -> nn.Sequential:
    """The original's ``convrelu``: a 'same' convolution and a ReLU, then 2x2 max pooling where the level pools."""
    layers = [nn.Conv2d(in_channels, out_channels, kernel_size, padding=(kernel_size - 1) // 2), nn.ReLU()]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


def _conv_transpose_relu(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    """The original's ``convreluT``: a stride-2 transposed convolution that doubles the size exactly, and a ReLU."""
    return nn.Sequential(
        nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride=2, padding=(kernel_size - 2) // 2), nn.ReLU()
    )


class RadioUNetStage(nn.Module):
    """One U-Net of the cascade, as the original wires it.

    Encoder block ``i`` (a convolution and a ReLU, pooled where ``down_pooling[i]``) feeds block ``i + 1`` and the
    decoder's skip. The decoder undoes the encoder from the deepest block up: a block that pooled is undone by a
    transposed convolution, one that did not by a convolution; each result is concatenated with the encoder's
    output one level up. The head concatenates the input twice, before each of its two convolutions; the last
    one, like every block of the original, ends in a ReLU: radio gain is never negative.
    """

    def __init__(
        self,
        in_channels: int,
        down_channels: Sequence[int],
        up_channels: Sequence[int],
        head_channels: int,
        down_kernel_sizes: Sequence[int],
        down_pooling: Sequence[bool],
        up_kernel_sizes: Sequence[int],
        head_kernel_size: int,
        out_channels: int = 1,
        final_relu: bool = True,
    ):
        super().__init__()
        self.down_blocks = nn.ModuleList()
        previous = in_channels
        for channels, kernel_size, pool in zip(down_channels, down_kernel_sizes, down_pooling):
            self.down_blocks.append(_conv_relu(previous, channels, kernel_size, pool))
            previous = channels
        self.up_blocks = nn.ModuleList()
        undone = range(len(down_channels) - 1, 0, -1)
        for index, (level, channels, kernel_size) in enumerate(zip(undone, up_channels, up_kernel_sizes)):
            skip = down_channels[level] if index else 0
            if down_pooling[level]:
                self.up_blocks.append(_conv_transpose_relu(previous + skip, channels, kernel_size))
            else:
                self.up_blocks.append(_conv_relu(previous + skip, channels, kernel_size, pool=False))
            previous = channels
        last = _conv_relu(head_channels + in_channels, out_channels, head_kernel_size, pool=False)
        self.head = nn.ModuleList([
            _conv_relu(previous + down_channels[0] + in_channels, head_channels, head_kernel_size, pool=False),
            last if final_relu else last[0],
        ])

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        skips = []
        hidden = inputs
        for block in self.down_blocks:
            hidden = block(hidden)
            skips.append(hidden)
        for up_block, skip in zip(self.up_blocks, reversed(skips[:-1])):
            hidden = torch.cat([up_block(hidden), skip], dim=1)
        hidden = self.head[0](torch.cat([hidden, inputs], dim=1))
        return self.head[1](torch.cat([hidden, inputs], dim=1))


@dataclass
class RadioUNetOutput(BaseOutput):
    """What a RadioUNet returns.

    Args:
        sample (`torch.Tensor`): (B, 1, H, W) the final radio maps on the gain's [0, 1] scale (the 8-bit map over
            255): the second U-Net's, or the first's when there is no second or only the first ran.
        first_sample (`torch.Tensor`): (B, 1, H, W) the first U-Net's maps, the second's input.
    """

    sample: torch.Tensor
    first_sample: torch.Tensor


def _check_widths(config: dict[str, Any]) -> None:
    levels = len(config["down_kernel_sizes"])
    if levels < 2 or len(config["down_pooling"]) != levels or len(config["up_kernel_sizes"]) != levels - 1:
        raise ValueError(
            f"down_kernel_sizes ({len(config['down_kernel_sizes'])}), down_pooling ({len(config['down_pooling'])}) "
            f"and up_kernel_sizes ({len(config['up_kernel_sizes'])}): expected L >= 2 encoder levels, L poolings "
            "and L - 1 decoder kernels"
        )
    if config["down_pooling"][0]:
        raise ValueError("down_pooling[0]: True; expected False, the head concatenates the input at full resolution")
    for index, kernel_size in enumerate(config["down_kernel_sizes"]):
        if kernel_size % 2 == 0:
            raise ValueError(f"down_kernel_sizes[{index}]: {kernel_size}; expected an odd size (a 'same' convolution)")
    if config["head_kernel_size"] % 2 == 0:
        raise ValueError(f"head_kernel_size: {config['head_kernel_size']}; expected an odd size")
    for index, kernel_size in enumerate(config["up_kernel_sizes"]):
        level = levels - 1 - index
        pooled = config["down_pooling"][level]
        if kernel_size < 2 or (kernel_size % 2 != 0) == pooled:
            expected = "an even size >= 2 (a transposed convolution that doubles" if pooled else "an odd size (a 'same'"
            raise ValueError(
                f"up_kernel_sizes[{index}]: {kernel_size}; encoder level {level} "
                f"{'pools' if pooled else 'does not pool'}, so expected {expected} convolution)"
            )
    for unet in ("first", "second"):
        down, up, head = (config[f"{unet}_{key}"] for key in ("down_channels", "up_channels", "head_channels"))
        if unet == "second" and down is None and up is None and head is None:
            continue
        if down is None or up is None or head is None:
            raise ValueError(f"{unet}_down_channels, {unet}_up_channels, {unet}_head_channels: expected all three set")
        if len(down) != levels or len(up) != levels - 1:
            raise ValueError(
                f"{unet}_down_channels ({len(down)}) and {unet}_up_channels ({len(up)}): expected {levels} and "
                f"{levels - 1}, one per encoder level and one per decoder level"
            )


def _check_map_size(maps: torch.Tensor, down_pooling: Sequence[bool]) -> None:
    """The U-Net halves the maps at each pooling and doubles them back: their sides must divide evenly."""
    factor = 2 ** sum(down_pooling)
    if maps.shape[-2] % factor or maps.shape[-1] % factor:
        raise ValueError(
            f"maps of {maps.shape[-2]}x{maps.shape[-1]}: expected sides divisible by {factor}, "
            f"2 to the {sum(down_pooling)} poolings"
        )


class RadioUNetModel(ModelMixin, ConfigMixin):
    r"""RadioUNet's RadioWNet: building and transmitter maps -> radio map, by two U-Nets in cascade.

    The first U-Net reads ``[buildings, transmitter]``; the second reads ``[first's map, buildings, transmitter]``
    through a detached copy, so that training the second never moves the first. The original trains the first to
    convergence with a squared error, then the second: :meth:`set_phase`. Without ``second_*`` widths it is one
    plain U-Net.

    Args:
        sample_size (`int`, defaults to 256): the side of the maps the model is for (pipelines check it); any side
            divisible by 2 to the number of poolings runs.
        first_down_channels (`tuple[int]`): the first U-Net's encoder widths, one per level.
        first_up_channels (`tuple[int]`): its decoder widths, from the deepest level up (one fewer).
        first_head_channels (`int`, defaults to 20): the width of its head's first convolution.
        second_down_channels, second_up_channels, second_head_channels (*optional*): the same for the second
            U-Net; all None for no cascade.
        down_kernel_sizes (`tuple[int]`): the encoder's kernel sizes, odd, one per level (both U-Nets).
        down_pooling (`tuple[bool]`): which encoder levels end in 2x2 max pooling; the first level does not.
        up_kernel_sizes (`tuple[int]`): the decoder's, from the deepest level up: even where the level it undoes
            pooled (a stride-2 transposed convolution), odd where it did not.
        head_kernel_size (`int`, defaults to 5): the kernel size of the head's two convolutions.

    The defaults are the ``"paper"`` preset: :meth:`from_preset`.
    """

    @register_to_config
    def __init__(
        self,
        sample_size: int = 256,
        first_down_channels: Sequence[int] = PRESETS["paper"]["first_down_channels"],
        first_up_channels: Sequence[int] = PRESETS["paper"]["first_up_channels"],
        first_head_channels: int = 20,
        second_down_channels: Sequence[int] | None = PRESETS["paper"]["second_down_channels"],
        second_up_channels: Sequence[int] | None = PRESETS["paper"]["second_up_channels"],
        second_head_channels: int | None = 20,
        down_kernel_sizes: Sequence[int] = _PAPER_LAYOUT["down_kernel_sizes"],
        down_pooling: Sequence[bool] = _PAPER_LAYOUT["down_pooling"],
        up_kernel_sizes: Sequence[int] = _PAPER_LAYOUT["up_kernel_sizes"],
        head_kernel_size: int = 5,
    ):
        super().__init__()
        _check_widths(dict(self.config))
        layout = dict(down_kernel_sizes=down_kernel_sizes, down_pooling=down_pooling,
                      up_kernel_sizes=up_kernel_sizes, head_kernel_size=head_kernel_size)
        self.first_unet = RadioUNetStage(2, first_down_channels, first_up_channels, first_head_channels, **layout)
        self.second_unet = None
        if second_down_channels is not None:
            self.second_unet = RadioUNetStage(3, second_down_channels, second_up_channels, second_head_channels,
                                              **layout)

    @classmethod
    def from_preset(cls, preset: str, **overrides: Any) -> RadioUNetModel:
        """A model of a named preset: ``"paper"`` (the original's widths, 256x256), ``"quickstart"`` (a small
        cascade, 64x64) or ``"unet"`` (one U-Net, 64x64); ``overrides`` replace config keys."""
        if preset not in PRESETS:
            raise ValueError(f"preset: {preset!r}; expected one of {sorted(PRESETS)}")
        return cls(**{**PRESETS[preset], **overrides})

    @property
    def is_cascade(self) -> bool:
        """Whether a second U-Net refines the first's map."""
        return self.second_unet is not None

    def set_phase(self, phase: int) -> list[nn.Parameter]:
        """Train one U-Net, the original's way: phase 1 the first, phase 2 the second on the first's output.

        Freezes the other U-Net (``requires_grad`` off) and returns the parameters to optimise. Phase 1 trains on
        ``forward(..., first_only=True)``, which skips the second U-Net; phase 2 on the full ``sample``.
        """
        if phase not in PHASES:
            raise ValueError(f"phase: {phase!r}; expected 1 (the first U-Net) or 2 (the second)")
        if phase == 2 and not self.is_cascade:
            raise ValueError("phase: 2; this model is one U-Net (no second_* widths), it has only phase 1")
        trained = self.first_unet if phase == 1 else self.second_unet
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        for parameter in trained.parameters():
            parameter.requires_grad_(True)
        return list(trained.parameters())

    def forward(
        self, buildings: torch.Tensor, transmitter: torch.Tensor, first_only: bool = False, return_dict: bool = True
    ) -> RadioUNetOutput | tuple[torch.Tensor, torch.Tensor]:
        r"""Predict radio maps.

        Args:
            buildings (`torch.Tensor`): (B, 1, H, W), 1 on buildings and 0 elsewhere.
            transmitter (`torch.Tensor`): (B, 1, H, W), 1 at the transmitter's pixel and 0 elsewhere.
            first_only (`bool`, defaults to `False`): run the first U-Net only (phase 1 of training); ``sample``
                is then the first's map.
            return_dict (`bool`, defaults to `True`): return a [`RadioUNetOutput`] instead of a tuple
                ``(sample, first_sample)``.
        """
        if buildings.shape != transmitter.shape or buildings.ndim != 4 or buildings.shape[1] != 1:
            raise ValueError(
                f"buildings {tuple(buildings.shape)} and transmitter {tuple(transmitter.shape)}: expected both "
                "shaped (B, 1, H, W)"
            )
        _check_map_size(buildings, self.config.down_pooling)
        inputs = torch.cat([buildings, transmitter], dim=1).to(self.dtype)
        first_sample = self.first_unet(inputs)
        sample = first_sample
        if self.is_cascade and not first_only:
            sample = self.second_unet(torch.cat([first_sample.detach(), inputs], dim=1))
        if not return_dict:
            return sample, first_sample
        return RadioUNetOutput(sample=sample, first_sample=first_sample)


class RadioUNetDenoiser(ModelMixin, ConfigMixin):
    r"""RadioUNet's U-Net as a denoiser in pixel space: ``UNet2DModel``'s call on RadioUNet's convolutions.

    The second stage's pixel-space option (``denoiser.space: pixel``): the pipeline hands it the noisy map
    concatenated with the condition features and the timestep, as it hands a ``UNet2DModel``. The noise level
    enters as one more input channel, ``timestep / num_train_timesteps`` everywhere (RadioUNet's plain
    convolutions have no embedding to add it to); the head is linear. At the quickstart's 64x64 a step costs
    what RadioUNet's own does, a fraction of a ``UNet2DModel`` of its size, whose group norms and time embeddings
    dominate at full resolution on a CPU.

    Args:
        sample_size (`int`, defaults to 64): the side of the maps.
        in_channels (`int`, defaults to 9): the noisy map's channels plus the condition features' (the noise
            level's channel comes on top).
        out_channels (`int`, defaults to 1): the prediction's channels (the formulation's, per map channel).
        down_channels, up_channels, head_channels: the widths, as :class:`RadioUNetModel`'s ``first_*``.
        down_kernel_sizes, down_pooling, up_kernel_sizes, head_kernel_size: the layout, as :class:`RadioUNetModel`'s.
        num_train_timesteps (`int`, defaults to 1000): the scale of the timesteps the pipeline passes.
    """

    @register_to_config
    def __init__(
        self,
        sample_size: int = 64,
        in_channels: int = 9,
        out_channels: int = 1,
        down_channels: Sequence[int] = PRESETS["unet"]["first_down_channels"],
        up_channels: Sequence[int] = PRESETS["unet"]["first_up_channels"],
        head_channels: int = 16,
        down_kernel_sizes: Sequence[int] = _SMALL_LAYOUT["down_kernel_sizes"],
        down_pooling: Sequence[bool] = _SMALL_LAYOUT["down_pooling"],
        up_kernel_sizes: Sequence[int] = _SMALL_LAYOUT["up_kernel_sizes"],
        head_kernel_size: int = 5,
        num_train_timesteps: int = 1000,
    ):
        super().__init__()
        _check_widths(dict(
            down_kernel_sizes=down_kernel_sizes, down_pooling=down_pooling, up_kernel_sizes=up_kernel_sizes,
            head_kernel_size=head_kernel_size, first_down_channels=down_channels, first_up_channels=up_channels,
            first_head_channels=head_channels, second_down_channels=None, second_up_channels=None,
            second_head_channels=None,
        ))
        self.unet = RadioUNetStage(
            in_channels + 1, down_channels, up_channels, head_channels, down_kernel_sizes, down_pooling,
            up_kernel_sizes, head_kernel_size, out_channels=out_channels, final_relu=False,
        )

    def forward(
        self, sample: torch.Tensor, timestep: torch.Tensor | float | int, return_dict: bool = True
    ) -> UNet2DOutput | tuple[torch.Tensor]:
        r"""The prediction for ``sample`` at ``timestep``.

        Args:
            sample (`torch.Tensor`): (B, in_channels, H, W), the noisy map and the condition features.
            timestep (`torch.Tensor`, `float` or `int`): one timestep, or one per map, in the scheduler's units.
            return_dict (`bool`, defaults to `True`): return a diffusers `UNet2DOutput` instead of a tuple.
        """
        if sample.ndim != 4 or sample.shape[1] != self.config.in_channels:
            raise ValueError(
                f"sample: shape {tuple(sample.shape)}; expected (B, {self.config.in_channels}, H, W)"
            )
        _check_map_size(sample, self.config.down_pooling)
        level = torch.as_tensor(timestep, device=sample.device, dtype=sample.dtype).reshape(-1, 1, 1, 1)
        level = (level / self.config.num_train_timesteps).expand(sample.shape[0], 1, *sample.shape[-2:])
        prediction = self.unet(torch.cat([sample.to(self.dtype), level.to(self.dtype)], dim=1))
        if not return_dict:
            return (prediction,)
        return UNet2DOutput(sample=prediction)
