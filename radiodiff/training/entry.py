"""``train_vae.py``'s, ``train_ldm.py``'s and ``train_radiounet.py``'s command line: ``--config``, ``--resume``,
``--overwrite`` and ``dotted.key=value`` overrides, the same for every stage.

Every failure a user can cause or meet (a bad config or input, an unreadable checkpoint, a full disk, a dead
process of a multi-process run) ends as one ``error: ...`` line on stderr and exit code 2, not a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from typing import Any

from ..arguments import parse_arguments
from ..config import ConfigError, read_ldm_config, read_radiounet_config, read_vae_config
from ..notices import show_warnings_as_lines
from .checkpoints import CheckpointError, error_summary, newest_checkpoint_note


@dataclass(frozen=True)
class StageCommand:
    """What differs between the training commands."""

    description: str
    config_help: str
    overrides_example: str
    exported: str
    read_config: Any
    trainer: str  # the function of ``radiodiff.training`` that trains the stage, imported when it runs


VAE_COMMAND = StageCommand(
    description="Train the RadioDiff VAE (VAE-GAN). Launch with `accelerate launch train_vae.py ...` or plain python.",
    config_help="a YAML config (ours, or the original RadioDiff first-stage YAML)",
    overrides_example="train.max_steps=200 output_dir=outputs/run loss.disc_start=100",
    exported="vae/, discriminator/",
    read_config=read_vae_config,
    trainer="train_vae",
)
LDM_COMMAND = StageCommand(
    description="Train RadioDiff's second stage (the latent diffusion model) on a frozen first-stage VAE. Launch "
    "with `accelerate launch train_ldm.py ...` or plain python.",
    config_help="a YAML config of the second stage (configs/ldm_quickstart.yaml, configs/radiodiff_ldm.yaml)",
    overrides_example="train.max_steps=200 output_dir=outputs/run vae.path=outputs/quickstart/vae",
    exported="pipeline/",
    read_config=read_ldm_config,
    trainer="train_ldm",
)
RADIOUNET_COMMAND = StageCommand(
    description="Train RadioUNet, the supervised baseline (one U-Net, or the original's cascade of two), on the same "
    "data and loop as the second stage. Launch with `accelerate launch train_radiounet.py ...` or plain python.",
    config_help="a YAML config of RadioUNet (configs/radiounet_quickstart.yaml, configs/radiounet.yaml)",
    overrides_example="train.max_steps=200 output_dir=outputs/run model.preset=unet",
    exported="pipeline/",
    read_config=read_radiounet_config,
    trainer="train_radiounet",
)


def build_parser(stage: StageCommand = VAE_COMMAND) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=stage.description, epilog=f"Overrides: dotted keys such as {stage.overrides_example}"
    )
    parser.add_argument("--config", help=stage.config_help)
    parser.add_argument(
        "--resume", help="'latest' (newest complete checkpoint in output_dir) or a checkpoint folder", default=None
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help=f"start afresh in an output_dir that holds an earlier run: delete its checkpoints/, {stage.exported}, "
        "samples/ and evaluation/ first (without it such a run is refused)",
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides")
    return parser


def is_collective_failure(error: RuntimeError) -> bool:
    """A collective that failed because another process died or stalled.

    NCCL raises ``DistBackendError``; gloo raises a plain RuntimeError from its transport, named in the message.
    """
    import torch.distributed

    return isinstance(error, torch.distributed.DistError) or "gloo" in str(error)


def collective_failure_message(error: RuntimeError, config: Any) -> str:
    rank, world_size = os.environ.get("RANK", "0"), os.environ.get("WORLD_SIZE", "1")
    return (
        f"process {rank} of {world_size}: another process of the run died, or stalled for longer than "
        f"train.collective_timeout_s ({config.train.collective_timeout_s} s), so this one stops too; the "
        f"launcher's report names the process that failed first; {newest_checkpoint_note(config.output_dir)} "
        f"(collective error: {error_summary(error, lines=1)})"
    )


def main_vae(argv: list[str] | None = None) -> int:
    """``train_vae.py``: the first stage."""
    return run_command(VAE_COMMAND, argv)


def main_ldm(argv: list[str] | None = None) -> int:
    """``train_ldm.py``: the second stage."""
    return run_command(LDM_COMMAND, argv)


def main_radiounet(argv: list[str] | None = None) -> int:
    """``train_radiounet.py``: the RadioUNet baseline."""
    return run_command(RADIOUNET_COMMAND, argv)


def run_command(stage: StageCommand, argv: list[str] | None) -> int:
    args = parse_arguments(build_parser(stage), argv)
    show_warnings_as_lines()
    # imported here so that `--help` comes back fast
    from .. import training
    from .trainer import TrainingError

    train = getattr(training, stage.trainer)

    # accelerate's process state must not exist before the trainer builds it (it decides CPU vs GPU groups)
    is_main_process = int(os.environ.get("RANK", "0")) == 0
    multi_process = int(os.environ.get("WORLD_SIZE", "1")) > 1
    try:
        config, notes = stage.read_config(args.config, args.overrides)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if notes and is_main_process:
        print(f"{args.config}: the original RadioDiff config was translated:")
        for note in notes:
            print(f"  {note}")
    try:
        output_dir = train(config, resume=args.resume, overwrite=args.overwrite)
    except (ConfigError, CheckpointError, TrainingError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        # a full disk or a lost mount: checkpoints are written whole or not at all, so the newest one is usable
        print(f"error: {error}; {newest_checkpoint_note(config.output_dir)}", file=sys.stderr)
        return 2
    except RuntimeError as error:
        if not (multi_process and is_collective_failure(error)):
            raise
        print(f"error: {collective_failure_message(error, config)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        print(f"interrupted: {interrupt or 'no checkpoint was written for the current step'}", file=sys.stderr)
        return 130
    if is_main_process:
        print(f"done: {output_dir}")
    return 0
