"""The ``radiodiff`` command. Thin: each subcommand parses its arguments and calls one library function."""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from .config import ConfigError

SubcommandAdder = Callable[[argparse._SubParsersAction], None]


def _add_info(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("info", help="print the package, library and device versions")

    def run(args: argparse.Namespace) -> int:
        import accelerate
        import diffusers
        import torch

        from . import __version__

        print(f"radiodiff {__version__}, diffusers {diffusers.__version__}, accelerate {accelerate.__version__}")
        print(f"torch {torch.__version__}, cuda available: {torch.cuda.is_available()}")
        return 0

    parser.set_defaults(run=run)


SUBCOMMANDS: list[SubcommandAdder] = [_add_info]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radiodiff", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except (ConfigError, FileNotFoundError, ValueError) as error:
        print(f"radiodiff {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
