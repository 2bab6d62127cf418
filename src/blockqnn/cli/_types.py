"""Argument types of the command line: each parses one value or raises
``argparse.ArgumentTypeError`` with a message naming what was expected (argparse then exits
with status 2 and the option's name). Counts are positive: zero is never read as "default"."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

from blockqnn.cli.block import _ints


def positive_int(text: str) -> int:
    value = parsed(int, text, "an integer")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = parsed(int, text, "an integer")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = parsed(float, text, "a number")
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    value = parsed(float, text, "a number")
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def fraction(text: str) -> float:
    value = parsed(float, text, "a number")
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def widths(text: str) -> tuple[int, ...]:
    widths = _ints(text)
    if min(widths) < 1:
        raise argparse.ArgumentTypeError(f"widths must be positive, got {text}")
    return widths


def parsed(kind: Callable[[str], Any], text: str, what: str) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
