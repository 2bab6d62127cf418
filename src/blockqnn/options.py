"""The options that define a search run, and the configuration they describe.

:class:`RunOptions` holds every option of ``blockqnn search`` that defines a run, under the
command line's names (``--val-fraction`` is ``val_fraction``). ``None`` means "not given":
the default applies (:data:`DEFAULTS`, or the rules below), and on a resume a given option
is compared with the stored configuration (:mod:`blockqnn.resume`). The command line and
the Python API (:func:`blockqnn.create_run`) both build a :class:`RunOptions` and call
:meth:`RunOptions.config`, so defaults and validation are defined once, here.

Pure Python: torch is imported only to resolve a training evaluator's options.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blockqnn import nsc
from blockqnn.config import DEFAULT_EVALUATIONS, PAPER_EVALUATIONS, ConfigError, SearchConfig
from blockqnn.errors import UserError

#: Defaults of the options that define the run (a field left None takes its default, so a
#: resume can tell what was given).
DEFAULTS: dict[str, Any] = {
    "space": "nsc",
    "strategy": "qlearning",
    "seed": 0,
    "max_index": nsc.DEFAULT_MAX_INDEX,
    "components": "pcc",
    "dataset": "digits",
    "val_fraction": 0.1,
    "fidelity": "proxy",
    "preset": "cifar",
    "device": "auto",
    "threads": 1,
}
#: Iterations a search's budget is divided into when ``batch`` is not given.
ITERATIONS_PER_SEARCH = 20
#: Constraint options -> the metric each one limits.
CONSTRAINTS = {"max_latency_ms": "latency_ms", "max_flops": "flops", "max_params": "params"}
#: Steering weight when ``objectives`` are given without ``steer_weight``.
STEER_WEIGHT = 10.0


class OptionError(ValueError, UserError):
    """An option that cannot define a run; the message names the option (``--name``)."""


@dataclass(frozen=True)
class RunOptions:
    """Every option that defines a search run (``blockqnn search --help`` describes each).

    ``None`` (or False for a switch) means not given. ``option`` (strategy options),
    ``metric_column`` and ``reward_term`` take a mapping or ``(key, value)`` pairs.
    Construction checks the counts and numbers (:class:`OptionError`).
    """

    space: str | None = None
    strategy: str | None = None
    evaluations: int | None = None
    iterations: int | None = None
    batch: int | None = None
    seed: int | None = None
    paper: bool = False
    mu: float | None = None
    rho: float | None = None
    count_duplicates: bool = False
    max_index: int | None = None
    no_dedupe: bool = False
    unshaped: bool = False
    option: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    components: str | None = None
    # training evaluation (--space nsc)
    dataset: str | None = None
    subset: int | None = None
    image_size: int | None = None
    val_fraction: float | None = None
    fidelity: str | None = None
    epochs: int | None = None
    preset: str | None = None
    repeats: int | None = None
    widths: tuple[int, ...] | None = None
    param_limit: int | None = None
    adapt_repeats: bool = False
    device: str | None = None
    amp: bool = False
    threads: int | None = None
    trainer: str | None = None
    # multi-fidelity evaluation
    rungs: str | list[float] | None = None
    eta: float | None = None
    # reward terms, objectives and constraints
    reward_term: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    objectives: list[str] | None = None
    steer_weight: float | None = None
    max_latency_ms: float | None = None
    max_flops: float | None = None
    max_params: int | None = None
    # tabular evaluation (--space nb201)
    table: str | None = None
    reward_column: str | None = None
    test_column: str | None = None
    cost_column: str | None = None
    metric_column: Mapping[str, str] = dataclasses.field(default_factory=dict)
    rung_columns: list[str] | None = None

    def __post_init__(self) -> None:
        for name in ("option", "reward_term", "metric_column"):
            object.__setattr__(self, name, dict(getattr(self, name) or {}))
        if self.widths is not None:
            object.__setattr__(self, "widths", tuple(self.widths))
        if self.evaluations is not None and self.iterations is not None:
            raise OptionError("--evaluations and --iterations: give one budget, not both")
        for names, check, rule in _CHECKS:
            for name in names:
                value = getattr(self, name)
                if value is not None and not check(value):
                    raise OptionError(f"--{_dashed(name)}: must be {rule}, got {value!r}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> RunOptions:
        """Options from keywords; an unknown name raises :class:`OptionError`."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise OptionError(f"unknown search option(s): {', '.join(unknown)}")
        return cls(**values)

    def value(self, name: str) -> Any:
        """The option's value, or its default (:data:`DEFAULTS`) when it was not given."""
        value = getattr(self, name)
        return DEFAULTS[name] if value is None else value

    def config(self) -> SearchConfig:
        """The run configuration these options describe (:class:`OptionError` if invalid)."""
        budget, batch = self.budget_and_batch()
        options = dict(self.option)
        evaluator = self.evaluator()
        if self.unshaped:
            options["shaped"] = False
        if self.value("strategy") in ("qlearning", "random"):
            options.setdefault("preset", "paper" if self.paper else "default")
        try:
            return SearchConfig(
                space=self.value("space"),
                components=self.value("components"),
                max_index=self.value("max_index"),
                strategy=self.value("strategy"),
                strategy_options=options,
                evaluations=budget,
                batch=batch,
                seed=self.value("seed"),
                mu=_either(self.mu, 1.0 if self.paper else 0.0),
                rho=_either(self.rho, 8.0 if self.paper else 0.0),
                dedupe=not self.no_dedupe,
                count_duplicates=self.count_duplicates or self.paper,
                evaluator=evaluator,
                rungs=self.rung_budgets(evaluator),
                eta=self.eta,
                reward_terms=dict(self.reward_term),
                objectives=list(self.objectives or []),
                steer_weight=_either(self.steer_weight, STEER_WEIGHT),
                constraints=self.constraints(),
            )
        except ConfigError as exc:
            raise OptionError(str(exc)) from None

    def budget_and_batch(self) -> tuple[int, int]:
        """The budget: ``evaluations``, ``iterations`` of ``batch`` (64 by default), else
        :data:`DEFAULT_EVALUATIONS` (the paper's with ``paper``). The batch, when not given,
        divides the budget into :data:`ITERATIONS_PER_SEARCH` iterations (at most 64; 64
        with ``paper`` or ``iterations``)."""
        batch = self.batch or (64 if self.paper or self.iterations else None)
        if self.evaluations:
            budget = self.evaluations
        elif self.iterations:
            budget = self.iterations * batch
        else:
            budget = PAPER_EVALUATIONS if self.paper else DEFAULT_EVALUATIONS
        return budget, batch or max(1, min(64, budget // ITERATIONS_PER_SEARCH))

    def rung_budgets(self, evaluator: dict[str, Any]) -> list[float]:
        """The rung budgets ``rungs`` asks for ([] without; OptionError if invalid): ``auto``
        (the geometric rungs of ``evaluator``'s early stop) or budgets ("1,3,9" or a list)."""
        if not self.rungs:
            return []
        if self.rungs != "auto":
            text = self.rungs if isinstance(self.rungs, str) else None
            try:
                return [float(b) for b in (text.split(",") if text else self.rungs)]
            except (TypeError, ValueError):
                raise OptionError(
                    f"--rungs: expected 'auto' or budgets, got {self.rungs!r}"
                ) from None
        if evaluator["kind"] != "train":
            raise OptionError("--rungs auto needs training epochs; give the table's rung costs")
        from blockqnn.fidelity import geometric_rungs
        from blockqnn.train.evaluator import TrainingEvaluator

        options = {k: v for k, v in evaluator.items() if k != "kind"}
        epochs = TrainingEvaluator.from_dict(options).early_stop_recipe().epochs
        try:
            return list(geometric_rungs(epochs).budgets)
        except ValueError as exc:
            raise OptionError(f"--rungs auto with {epochs} epochs: {exc}") from None

    def constraints(self) -> dict[str, float]:
        """Metric name -> limit for every constraint option given."""
        given = {metric: getattr(self, option) for option, metric in CONSTRAINTS.items()}
        return {metric: limit for metric, limit in given.items() if limit is not None}

    def evaluator(self) -> dict[str, Any]:
        """The evaluator options these options describe (plain data for the run config)."""
        if self.value("space") == "nb201":
            if not (self.table and self.reward_column):
                raise OptionError("--space nb201 needs --table and --reward-column")
            return {
                "kind": "tabular",
                "table": str(Path(self.table).resolve()),
                "reward_column": self.reward_column,
                "test_column": self.test_column,
                "cost_column": self.cost_column,
                "metric_columns": {k: str(v) for k, v in self.metric_column.items()},
                "rung_columns": self.rung_columns,
            }
        from blockqnn.train.evaluator import TrainingEvaluator

        try:
            evaluator = TrainingEvaluator(
                dataset=absolute_dataset(self.value("dataset")),
                subset=self.subset,
                image_size=self.image_size,
                val_fraction=self.value("val_fraction"),
                preset=self.value("preset"),
                widths=self.widths,
                repeats=self.repeats,
                conv="plain" if self.value("components") == "separate" else "pcc",
                recipe=self.fidelity or ("paper" if self.paper else DEFAULTS["fidelity"]),
                recipe_overrides={"epochs": self.epochs} if self.epochs else {},
                max_params=self.param_limit,
                adapt_repeats=self.adapt_repeats,
                seed=self.value("seed"),
                threads=self.value("threads"),
                amp=self.amp,
                device=self.value("device"),
                limits=self.constraints(),
                trainer=self.trainer,
            )
        except ValueError as exc:
            raise OptionError(str(exc)) from None
        return {"kind": "train", **evaluator.to_dict()}


def absolute_dataset(spec: str) -> str:
    """The spec as a run stores and compares it: the dataset's name in lower case (loading
    reads it so: ``DIGITS`` is ``digits``) and a relative PATH made absolute, so workers
    elsewhere find it."""
    name, sep, path = spec.partition(":")
    name = name.strip().lower()
    return f"{name}:{Path(path).resolve()}" if sep and path else name


def _either(value: float | None, default: float) -> float:
    return default if value is None else value


def _dashed(name: str) -> str:
    return name.replace("_", "-")


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


#: Per group of options: the check each given value must pass and the rule it states.
_CHECKS = (
    (
        ("evaluations", "iterations", "batch", "max_index", "subset", "image_size", "epochs",
         "repeats", "param_limit", "threads", "max_params"),
        _count,
        "a positive integer",
    ),
    (("seed",), lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    (("mu", "rho", "steer_weight"), lambda v: _number(v) and v >= 0, "a finite number >= 0"),
    (("eta", "max_latency_ms", "max_flops"), lambda v: _number(v) and v > 0, "a positive number"),
    (("val_fraction",), lambda v: _number(v) and 0 <= v < 1, "in [0, 1)"),
    (("widths",), lambda v: len(v) > 0 and all(_count(w) for w in v), "positive integers"),
)  # fmt: skip
