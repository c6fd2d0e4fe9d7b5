"""The PatchGAN discriminator of pix2pix / taming-transformers, as a diffusers model."""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

NORMS = ("batch", "actnorm")


class ActNorm(nn.Module):
    """Per-channel affine normalisation initialised from the first training batch (Glow; taming's ActNorm).

    The state dict keys (``loc``, ``scale``, ``initialized``) match taming's, so original checkpoints load.
    """

    def __init__(self, num_features: int):
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(1, num_features, 1, 1))
        self.scale = nn.Parameter(torch.ones(1, num_features, 1, 1))
        self.register_buffer("initialized", torch.tensor(0, dtype=torch.uint8))
        # a host-side copy of ``initialized`` so that steady-state forwards never sync with the device
        self._known_initialized = False

    @torch.no_grad()
    def _initialize(self, features: torch.Tensor) -> None:
        """``loc``/``scale`` from the mean and (unbiased) std per channel of the first batch.

        In a process group, of the first batch of every process together: initialised from each process's own
        batch, the copies of one model would start apart and stay apart (DDP never syncs them again).
        """
        per_channel = features.transpose(0, 1).flatten(1).double()
        sums = torch.stack([per_channel.sum(1), per_channel.square().sum(1)])
        count = torch.tensor(float(per_channel.shape[1]), dtype=torch.float64, device=features.device)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(sums)
            torch.distributed.all_reduce(count)
        mean = sums[0] / count
        std = ((sums[1] - count * mean.square()).clamp(min=0.0) / (count - 1)).sqrt()
        self.loc.copy_(-mean.view_as(self.loc))
        self.scale.copy_(1.0 / (std.view_as(self.scale) + 1e-6))
        self.initialized.fill_(1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.training and not self._known_initialized:
            if not bool(self.initialized.item()):
                self._initialize(features)
            self._known_initialized = True
        return self.scale * (features + self.loc)


def _taming_weight_init(module: nn.Module) -> None:
    # taming's ``weights_init``: N(0, 0.02) convolutions, N(1, 0.02) BatchNorm scales, zero BatchNorm shifts
    if isinstance(module, nn.Conv2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class PatchGANDiscriminator(ModelMixin, ConfigMixin):
    r"""The pix2pix PatchGAN discriminator (taming's ``NLayerDiscriminator``).

    It maps a batch of maps (B, C, H, W) to a grid of real/fake logits (B, 1, H', W'), one per
    overlapping 70x70 patch for ``n_layers=3``: 30x30 logits for a 256x256 map. With the defaults and one
    input channel it has 2,763,585 parameters. Module names follow taming (``main.<i>``), so the
    ``loss.discriminator.*`` weights of an original checkpoint load after stripping the prefix.

    Args:
        in_channels (`int`, defaults to 1): channels of the maps judged.
        ndf (`int`, defaults to 64): channels of the first convolution.
        n_layers (`int`, defaults to 3): stride-2 convolutions; each widens the receptive field.
        norm (`str`, defaults to `"batch"`): `"batch"` (BatchNorm) or `"actnorm"` (data-initialised ActNorm).
    """

    @register_to_config
    def __init__(self, in_channels: int = 1, ndf: int = 64, n_layers: int = 3, norm: str = "batch"):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm: {norm!r} is not one of {list(NORMS)}")
        if n_layers < 1:
            raise ValueError(f"n_layers: expected at least 1, got {n_layers}")
        norm_layer = nn.BatchNorm2d if norm == "batch" else ActNorm
        # BatchNorm has its own shift, so the convolutions before it need no bias
        use_bias = norm != "batch"
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, ndf, kernel_size=4, stride=2, padding=1),
            nn.LeakyReLU(0.2, True),
        ]
        width = 1
        for n in range(1, n_layers + 1):
            previous_width, width = width, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [
                nn.Conv2d(ndf * previous_width, ndf * width, kernel_size=4, stride=stride, padding=1, bias=use_bias),
                norm_layer(ndf * width),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(ndf * width, 1, kernel_size=4, stride=1, padding=1))
        self.main = nn.Sequential(*layers)
        self.apply(_taming_weight_init)

    def forward(self, sample: torch.Tensor) -> torch.Tensor:
        """Patch logits for ``sample``: positive means "looks real"."""
        return self.main(sample)
