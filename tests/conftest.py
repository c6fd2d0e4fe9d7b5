"""Shared fixtures. Nothing in the suite may reach the network: the Hub is forced offline."""

import os
import re
import sys
from pathlib import Path

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

from safetensors.torch import load_file  # noqa: E402

from radiodiff import RadioDiffVAE  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EXPORTED_WEIGHTS = (
    "vae/diffusion_pytorch_model.safetensors",
    "vae/diffusion_pytorch_model.ema.safetensors",
    "discriminator/diffusion_pytorch_model.safetensors",
)
TINY_VAE = dict(block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4, sample_size=32)
# a `[Train Step]` line of either stage's training log: step, max steps and the logged values
STEP_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \[Train Step\] (\d+)/(\d+): (.*), $")


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


def tiny_training_overrides(output_dir, cache_dir) -> list[str]:
    """Overrides that turn any config into a seconds-long CPU run on tiny synthetic maps."""
    return [
        f"output_dir={output_dir}",
        "model.block_out_channels=[8, 16]",
        "model.layers_per_block=1",
        "model.norm_num_groups=4",
        "discriminator.ndf=8",
        "discriminator.n_layers=2",
        *tiny_loop_overrides(cache_dir),
        "train.ema_update_every=2",
        "loss.disc_start=5",
    ]


def tiny_loop_overrides(cache_dir) -> list[str]:
    """What both stages' tiny runs share: 8 steps on 32x32 synthetic maps, checkpoints and samples every 4."""
    return [
        "data.source=synthetic",
        f"data.synthetic.cache_dir={cache_dir}",
        "data.synthetic.maps=8",
        "data.synthetic.tx_per_map=4",
        "data.synthetic.size=32",
        "train.batch_size=4",
        "train.lr=1.0e-3",
        "train.max_steps=8",
        "train.save_every=4",
        "train.sample_every=4",
        "train.log_every=2",
        "train.num_sample_images=2",
        # fp32 on every machine: `auto` would pick bf16 on a CPU with bf16 arithmetic, and results would depend on it
        "train.mixed_precision=no",
    ]


def two_process_command(stage: str, output_dir, overrides: list[str]) -> list[str]:
    """``torchrun`` of ``distributed_worker.py`` with two CPU processes (gloo) training ``stage``."""
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
            str(REPO / "tests" / "distributed_worker.py"), stage, str(output_dir), *overrides]


def launch_command(script: str, config: str, overrides: list[str]) -> list[str]:
    """``accelerate launch`` of a training script on one CPU process, as a user would run it."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--cpu",
            str(REPO / script), "--config", str(REPO / config), *overrides]


def subprocess_env() -> dict[str, str]:
    """The environment for training subprocesses: this checkout first on the path, one thread (exact results)."""
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def read_exported_weights(output_dir: Path) -> dict[str, torch.Tensor]:
    """Every tensor a run exports (vae/, its EMA variant, discriminator/), keyed by file and name."""
    weights = {}
    for name in EXPORTED_WEIGHTS:
        weights.update({f"{name}:{k}": v for k, v in load_file(Path(output_dir) / name).items()})
    return weights


def assert_same_weights(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert actual.keys() == expected.keys()
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], rtol=0, atol=0, msg=key)


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


def reset_accelerate_state() -> None:
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


# the mocked Hub's fixtures, for every test that pushes
from hub_mock import hub, no_token  # noqa: E402,F401
