"""Resume rules: which given options contradict a run's stored configuration.

A resumed run continues with the configuration stored when it began; an option given again
must agree with it (:func:`conflicts` lists those that do not, as a command line types
them). Where evaluations run (workers, executor, GPUs) is not part of the configuration and
may change.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from blockqnn.config import SearchConfig
from blockqnn.options import CONSTRAINTS, OptionError, RunOptions, absolute_dataset


def _evaluator_field(name: str) -> Callable[[SearchConfig], Any]:
    return lambda c: c.evaluator.get(name)


def _stored_widths(c: SearchConfig) -> tuple[int, ...] | None:
    widths = c.evaluator.get("widths")
    return None if widths is None else tuple(widths)


#: Per option that defines the run: its value in a stored configuration.
STORED: dict[str, Callable[[SearchConfig], Any]] = {
    "space": lambda c: c.space,
    "strategy": lambda c: c.strategy,
    "evaluations": lambda c: c.evaluations,
    "batch": lambda c: c.batch,
    "seed": lambda c: c.seed,
    "mu": lambda c: c.mu,
    "rho": lambda c: c.rho,
    "max_index": lambda c: c.max_index,
    "components": lambda c: c.components,
    "no_dedupe": lambda c: not c.dedupe,
    "count_duplicates": lambda c: c.count_duplicates,
    "paper": lambda c: (
        c.count_duplicates
        and (c.mu, c.rho) == (1.0, 8.0)
        and c.strategy_options.get("preset", "paper") == "paper"
    ),
    "unshaped": lambda c: c.strategy_options.get("shaped") is False,
    "dataset": lambda c: c.evaluator.get("dataset") and absolute_dataset(c.evaluator["dataset"]),
    "subset": _evaluator_field("subset"),
    "image_size": _evaluator_field("image_size"),
    "val_fraction": _evaluator_field("val_fraction"),
    "fidelity": _evaluator_field("recipe"),
    "epochs": lambda c: c.evaluator.get("recipe_overrides", {}).get("epochs"),
    "preset": _evaluator_field("preset"),
    "repeats": _evaluator_field("repeats"),
    "widths": _stored_widths,
    "param_limit": _evaluator_field("max_params"),
    "adapt_repeats": _evaluator_field("adapt_repeats"),
    "device": _evaluator_field("device"),
    "amp": _evaluator_field("amp"),
    "trainer": _evaluator_field("trainer"),
    "table": _evaluator_field("table"),
    "reward_column": _evaluator_field("reward_column"),
    "test_column": _evaluator_field("test_column"),
    "cost_column": _evaluator_field("cost_column"),
    "metric_column": lambda c: c.evaluator.get("metric_columns", {}),
    "reward_term": lambda c: c.reward_terms,
    "objectives": lambda c: c.objectives,
    "steer_weight": lambda c: c.steer_weight,
    "rungs": lambda c: c.rungs,
    "eta": lambda c: c.eta,
    "rung_columns": _evaluator_field("rung_columns"),
    **{
        option: (lambda c, m=metric: c.constraints.get(m)) for option, metric in CONSTRAINTS.items()
    },
}
#: How a given value is stored (paths are made absolute).
NORMALISE: dict[str, Callable[[Any], Any]] = {
    "dataset": absolute_dataset,
    "table": lambda text: str(Path(text).resolve()),
    "metric_column": lambda columns: {k: str(v) for k, v in columns.items()},
    "widths": tuple,
    "objectives": list,
}


def conflicts(options: RunOptions, stored: SearchConfig) -> list[str]:
    """The given options that contradict the stored configuration, as ``--opt V (run: W)``.

    An option counts when it was given (not None; a switch that is set; a non-empty
    mapping).
    """
    found = []
    for name, value_of in STORED.items():
        given = getattr(options, name)
        if given is None or given is False or given == {}:
            continue
        if name == "rungs":  # 'auto' means the rungs of the run's own early stop
            given = options.rung_budgets(stored.evaluator)
        given = NORMALISE.get(name, lambda v: v)(given)
        if given != value_of(stored):
            found.append(_describe(name, given, value_of(stored)))
    if options.iterations and options.iterations * stored.batch != stored.evaluations:
        found.append(
            _describe("iterations", options.iterations, stored.evaluations // stored.batch)
        )
    for key, value in options.option.items():
        if stored.strategy_options.get(key) != value:
            found.append(f"--option {key}={value} (run: {stored.strategy_options.get(key)})")
    return found


def check_resume(run_dir: str | Path, options: RunOptions, stored: SearchConfig) -> None:
    """OptionError naming every given option that contradicts the run in ``run_dir``."""
    changed = conflicts(options, stored)
    if changed:
        raise OptionError(
            f"--resume continues {run_dir} with its stored configuration, which "
            f"these options contradict: {', '.join(changed)}; drop them, or start a "
            "new run in another --run-dir"
        )


def _describe(name: str, given: Any, stored: Any) -> str:
    """``--option VALUE (run: STORED)`` (a switch alone), values as typed on a command line."""
    option = "--" + name.replace("_", "-")
    return option if given is True else f"{option} {_shown(given)} (run: {_shown(stored)})"


def _shown(value: Any) -> str:
    if isinstance(value, tuple | list):
        return ",".join(map(_shown, value))
    return f"{value:g}" if isinstance(value, float) else str(value)
