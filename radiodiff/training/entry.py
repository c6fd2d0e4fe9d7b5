"""``train_vae.py``'s command line: ``--config``, ``--resume`` and ``dotted.key=value`` overrides."""

from __future__ import annotations

import argparse
import os
import sys

from ..config import ConfigError, read_config
from .checkpoints import CheckpointError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Train the RadioDiff VAE (VAE-GAN). Launch with `accelerate launch train_vae.py ...` or plain python.",
        epilog="Overrides: dotted keys such as train.max_steps=200 output_dir=outputs/run loss.disc_start=100",
    )
    parser.add_argument("--config", help="a YAML config (ours, or the original RadioDiff first-stage YAML)")
    parser.add_argument(
        "--resume", help="'latest' (newest complete checkpoint in output_dir) or a checkpoint folder", default=None
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # imported here so that `--help` and config errors come back fast
    from .trainer import TrainingError, train

    # accelerate's process state must not exist before the trainer builds it (it decides CPU vs GPU groups)
    is_main_process = int(os.environ.get("RANK", "0")) == 0
    try:
        config, notes = read_config(args.config, args.overrides)
        if notes and is_main_process:
            print(f"{args.config}: the original RadioDiff config was translated:")
            for note in notes:
                print(f"  {note}")
        output_dir = train(config, resume=args.resume)
    except (ConfigError, CheckpointError, TrainingError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        print(f"interrupted: {interrupt or 'no checkpoint was written for the current step'}", file=sys.stderr)
        return 130
    if is_main_process:
        print(f"done: {output_dir}")
    return 0
