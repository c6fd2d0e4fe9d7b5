"""Shared fixtures. Nothing in the suite may reach the network: the Hub is forced offline. The helpers the tests
import live in ``tests/helpers/``."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# one thread, like the training subprocesses: on a shared 2-core CI machine torch's second OpenMP thread spins
# against other jobs, and a tiny training run took 10-30x longer with it (2 s vs 26-62 s measured)
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from radiodiff import RadioDiffVAE  # noqa: E402
from tests.helpers.tiny_runs import TINY_VAE, reset_accelerate_state  # noqa: E402


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


@pytest.fixture(scope="session")
def synthetic_cache(tmp_path_factory):
    """One synthetic-data cache for the whole session: generated once, reused by every training test."""
    return tmp_path_factory.mktemp("synthetic-cache")


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """accelerate keeps process-wide state; each test builds its own Accelerator from scratch."""
    reset_accelerate_state()
    yield
    reset_accelerate_state()


# the mocked Hub's fixtures, for every test that pushes
from tests.helpers.hub_mock import hub, no_token  # noqa: E402,F401
