"""Shared fixtures. Nothing in the suite may reach the network: the Hub is forced offline."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

from radiodiff import RadioDiffVAE  # noqa: E402

TINY_VAE = dict(block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4, sample_size=32)


@pytest.fixture
def tiny_vae() -> RadioDiffVAE:
    torch.manual_seed(0)
    return RadioDiffVAE.from_block_channels(**TINY_VAE)


@pytest.fixture
def gain_maps() -> torch.Tensor:
    """A batch of two smooth 32x32 maps in [-1, 1] with a dark 'building'."""
    grid = torch.linspace(-1, 1, 32)
    distance = (grid[None, :] ** 2 + grid[:, None] ** 2).sqrt()
    maps = torch.stack([1 - distance, 0.8 - 0.9 * distance]).clamp(-1, 1).unsqueeze(1)
    maps[:, :, 4:10, 20:28] = -1.0
    return maps
