"""Tabular evaluation: look an architecture's numbers up in a benchmark table (CSV).

A table (e.g. NAS-Bench-201's ``cifar10_valid.csv``) has one row per architecture, keyed
by its text form in an ``arch_str`` or ``ArchitectureString`` column. :class:`TabularEvaluator`
is a small picklable configuration (the path and column names); the table is read on first
use in each process and cached at module level, keyed by the file's real path and
modification time, so a rewritten file is read again. Every problem with a table raises
:class:`TableError` naming the file.

This module is pure Python: it never imports torch.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

from blockqnn.errors import UserError
from blockqnn.evaluation import Result, Step

log = logging.getLogger(__name__)

#: Column names recognised as the architecture key, in order of preference.
ARCH_COLUMNS: tuple[str, ...] = ("arch_str", "ArchitectureString")


class TableError(ValueError, UserError):
    """A table that cannot be used (missing file or column, bad value, unknown arch)."""


class Entry(NamedTuple):
    """One architecture's numbers: the reward column, the test column, the cost column and
    the metric columns asked for (by metric name)."""

    reward: float
    test: float | None  #: None when no test column was asked for
    cost: float  #: 0.0 when no cost column was asked for
    metrics: Mapping[str, float] = MappingProxyType({})


#: Metric name -> column, as a hashable tuple of pairs.
_MetricColumns = tuple[tuple[str, str], ...]
_Columns = tuple[str, str | None, str | None, str | None, _MetricColumns]
_CACHE: dict[tuple[str, int, _Columns], Mapping[str, Entry]] = {}


def load_table(
    path: str | os.PathLike[str],
    reward_column: str,
    test_column: str | None = None,
    cost_column: str | None = None,
    arch_column: str | None = None,
    metric_columns: Mapping[str, str] | None = None,
) -> Mapping[str, Entry]:
    """A read-only mapping arch string -> :class:`Entry`, in the file's row order.

    ``metric_columns`` maps metric names to the columns holding them (``Entry.metrics``).

    ``arch_column`` None picks the first of :data:`ARCH_COLUMNS` present. The result is
    cached per process by (real path, mtime, columns); a changed file is read again.
    Raises :class:`TableError` for a missing file, a missing column (listing the available
    ones), an empty table, a non-numeric or non-finite value (with its line), or an
    architecture listed twice.
    """
    name = os.fspath(path)
    real = os.path.realpath(name)
    mtime = _mtime(name)
    metrics = tuple(sorted((metric_columns or {}).items()))
    columns: _Columns = (reward_column, test_column, cost_column, arch_column, metrics)
    key = (real, mtime, columns)
    table = _CACHE.get(key)
    if table is None:
        for stale in [k for k in _CACHE if k[0] == real and k[1] != mtime]:
            del _CACHE[stale]
        table = _CACHE[key] = _read(name, *columns)
    return table


def _mtime(name: str) -> int:
    try:
        return os.stat(name).st_mtime_ns
    except FileNotFoundError:
        raise TableError(f"{name}: table file not found") from None
    except OSError as exc:
        raise TableError(f"{name}: cannot read the table ({exc.strerror or exc})") from None


def _read(
    name: str,
    reward: str,
    test: str | None,
    cost: str | None,
    arch: str | None,
    metrics: _MetricColumns,
) -> Mapping[str, Entry]:
    start = time.perf_counter()
    wanted = (reward, test, cost, *(column for _, column in metrics))
    try:
        with open(name, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            arch = _check_columns(name, reader.fieldnames, arch, wanted)
            entries = _rows(name, reader, arch, (reward, test, cost), metrics)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise TableError(f"{name}: cannot read the table ({exc})") from None
    if not entries:
        raise TableError(f"{name}: the table has no rows")
    log.info("read %d rows from %s in %.2f s", len(entries), name, time.perf_counter() - start)
    return MappingProxyType(entries)


def _check_columns(
    name: str, fields: list[str] | None, arch: str | None, wanted: tuple[str | None, ...]
) -> str:
    """The arch column to use, after checking every wanted column exists."""
    if not fields:
        raise TableError(f"{name}: the table is empty (no header row)")
    if arch is None:
        arch = next((c for c in ARCH_COLUMNS if c in fields), None)
        if arch is None:
            raise TableError(
                f"{name}: no architecture column ({' or '.join(ARCH_COLUMNS)}); "
                f"available columns: {', '.join(fields)}"
            )
    for column in (arch, *wanted):
        if column is not None and column not in fields:
            raise TableError(
                f"{name}: no column {column!r}; available columns: {', '.join(fields)}"
            )
    return arch


def _rows(
    name: str,
    reader: csv.DictReader,
    arch: str,
    columns: tuple[str, str | None, str | None],
    metrics: _MetricColumns,
) -> dict[str, Entry]:
    reward, test, cost = columns
    entries: dict[str, Entry] = {}
    for row_number, row in enumerate(reader, start=1):
        where = f"{name}, line {reader.line_num} (row {row_number})"
        key = (row[arch] or "").strip()
        if not key:
            raise TableError(f"{where}: empty architecture in column {arch!r}")
        if key in entries:
            raise TableError(f"{where}: architecture {key!r} is listed twice")
        entries[key] = Entry(
            _number(where, row, reward),
            None if test is None else _number(where, row, test),
            0.0 if cost is None else _number(where, row, cost),
            MappingProxyType({metric: _number(where, row, c) for metric, c in metrics}),
        )
    return entries


def _number(where: str, row: dict[str, str | None], column: str) -> float:
    text = row[column]
    try:
        value = float(text or "")
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise TableError(f"{where}: column {column!r} holds {text!r}, not a finite number")
    return value


def best(table: Mapping[str, Entry], by: str = "reward") -> tuple[str, Entry]:
    """The architecture with the highest ``by`` value (``"reward"`` or ``"test"``).

    Ties go to the earliest row. Raises :class:`TableError` for an empty table or for
    ``by="test"`` on a table loaded without a test column.
    """
    if by not in ("reward", "test"):
        raise ValueError(f"by must be 'reward' or 'test', got {by!r}")
    if not table:
        raise TableError("best() of an empty table")
    if by == "test" and any(e.test is None for e in table.values()):
        raise TableError("best(by='test') needs a table loaded with a test column")
    arch = max(table, key=lambda a: getattr(table[a], by))
    return arch, table[arch]


@dataclass(frozen=True)
class TabularEvaluator:
    """Evaluates an architecture by looking it up in a CSV table; implements ``Evaluator``.

    ``table`` is the CSV path (a ``PathLike`` is stored as ``str``; a relative path is
    resolved against the worker's working directory). The object holds only the path and
    column names, so it pickles small; the table is loaded lazily by :func:`load_table`.
    ``evaluate`` raises :class:`TableError` for a table problem or an unknown architecture.
    """

    table: str
    reward_column: str
    test_column: str | None = None
    cost_column: str | None = None
    arch_column: str | None = None
    #: further metrics by name -> column, e.g. {"eval_time_s": "test-per-time"}
    metric_columns: Mapping[str, str] = field(default_factory=dict)
    #: multi-fidelity: the column of each rung (e.g. 12-epoch and 200-epoch accuracy)
    rung_columns: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "table", os.fspath(self.table))
        if self.rung_columns is not None:
            object.__setattr__(self, "rung_columns", tuple(self.rung_columns))

    def entries(self) -> Mapping[str, Entry]:
        """The whole table (cached), as :func:`load_table` returns it."""
        return load_table(
            self.table,
            self.reward_column,
            self.test_column,
            self.cost_column,
            self.arch_column,
            self.metric_columns,
        )

    def evaluate(self, arch: str) -> Result:
        """The table's numbers for ``arch`` (surrounding whitespace ignored)."""
        entries = self.entries()
        try:
            entry = entries[arch.strip()]
        except KeyError:
            raise TableError(
                f"{self.table}: architecture {arch!r} is not in the table ({len(entries)} rows)"
            ) from None
        metrics = {**entry.metrics, **({} if entry.test is None else {"test_accuracy": entry.test})}
        return Result(accuracy=entry.reward, metrics=metrics, cost_s=entry.cost)

    def evaluate_rung(self, arch: str, step: Step) -> Result:
        """The value of ``arch`` in the column of rung ``step.rung``, with its other
        metrics (the test accuracy only at the last rung). The cost is the step's budget
        increment (the simulated cost of training on from the rung below); the curve is one
        point at ``step.budget``. Raises :class:`TableError` without ``rung_columns`` or
        for a rung beyond them."""
        if not self.rung_columns or step.rung >= len(self.rung_columns):
            raise TableError(f"{self.table}: no column for rung {step.rung} ({self.rung_columns})")
        whole = self.evaluate(arch)  # checks that the table holds arch
        column = self.rung_columns[step.rung]
        value = load_table(self.table, column, arch_column=self.arch_column)[arch.strip()].reward
        return Result(
            accuracy=value,
            metrics={k: v for k, v in whole.metrics.items() if step.last or k != "test_accuracy"},
            cost_s=step.budget - step.start,
            curve=[{"epoch": step.budget, "val_accuracy": value, "val_loss": None}],
        )
