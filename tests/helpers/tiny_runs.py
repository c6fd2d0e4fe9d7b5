"""Tiny training runs of either stage: the overrides that make a run seconds long on CPU, the commands that launch
one in subprocesses, and the comparison of the weights runs export."""

import os
import re
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[2]
EXPORTED_WEIGHTS = (
    "vae/diffusion_pytorch_model.safetensors",
    "vae/diffusion_pytorch_model.ema.safetensors",
    "discriminator/diffusion_pytorch_model.safetensors",
)
TINY_VAE = dict(block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4, sample_size=32)
# a `[Train Step]` line of either stage's training log: step, max steps and the logged values
STEP_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \[Train Step\] (\d+)/(\d+): (.*), $")


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
            str(REPO / "tests" / "helpers" / "distributed_worker.py"), stage, str(output_dir), *overrides]


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


def reset_accelerate_state() -> None:
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
