"""Command line: thin subcommands over the library. ``blockqnn --help`` lists them.

Each subcommand module exposes ``register(subparsers)``, which adds its parser and sets
``func(args) -> int`` (the exit status). Errors the user can fix exit with status 2 and a
one-line message on stderr: those are the library's :class:`~blockqnn.errors.UserError`
classes and a missing file (:data:`USER_ERRORS`); a subcommand may set ``user_errors`` to
other classes. Any other exception is a bug and keeps its traceback. Output cut short by
a closed pipe (``| head``) ends quietly; Ctrl-C ends with status 130 and no traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from blockqnn import __version__
from blockqnn.cli import block, draw, export, plot, report, search, show, train
from blockqnn.cli._errors import UsageError as UsageError  # importable from here
from blockqnn.errors import UserError

COMMANDS = (block, search, show, export, train, draw, plot, report)

#: Exceptions reported as the user's errors by subcommands that set no ``user_errors``.
USER_ERRORS = (UserError, FileNotFoundError)
#: Exit status when stdout was closed early (128 + SIGPIPE, as a shell reports it).
EXIT_BROKEN_PIPE = 141
#: Exit status after Ctrl-C (128 + SIGINT).
EXIT_INTERRUPTED = 130


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
    except getattr(args, "user_errors", USER_ERRORS) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"blockqnn {args.command}: error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print(f"blockqnn {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so flushing it at exit does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
