"""The command line of the `radiodiff` command and of the two trainers: options, then ``dotted.key=value``
config overrides, in any order."""

from __future__ import annotations

import argparse


def parse_arguments(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """``parser.parse_args``, except that ``key=value`` overrides may also follow options (``a=1 --overwrite b=2``).

    argparse fills a ``nargs="*"`` positional once, so overrides after an option were refused as unrecognised; here
    they join ``overrides`` in the order given. Anything else unknown is still argparse's usual error.
    """
    args, extra = parser.parse_known_args(argv)
    if extra:
        if not hasattr(args, "overrides") or any(token.startswith("-") or "=" not in token for token in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    return args
