"""Command line: thin subcommands over the library. ``blockqnn --help`` lists them.

Each subcommand module exposes ``register(subparsers)``, which adds its parser and sets
``func(args) -> int`` (the exit status). Errors the user can fix exit with status 2 and a
one-line message on stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from blockqnn import __version__
from blockqnn.cli import block, draw, export, plot, report, search, show, train
from blockqnn.store import StoreError

COMMANDS = (block, search, show, export, train, draw, plot, report)


class UsageError(Exception):
    """A problem with the user's input: printed on stderr, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="blockqnn", description="Block-wise neural architecture search (BlockQNN)."
    )
    parser.add_argument("--version", action="version", version=f"blockqnn {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``blockqnn`` program; returns the exit status."""
    args = build_parser().parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    try:
        return args.func(args)
    except (UsageError, ValueError, KeyError, FileNotFoundError, StoreError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"blockqnn {args.command}: error: {message}", file=sys.stderr)
        return 2
