"""``blockqnn search``: run (or ``--resume``) a search in a run directory.

Order of work, so that a mistake never leaves a half-made run behind: the options are
checked, then everything the master can check (the strategy's options, the dataset or
table, one network, the executor's connection), and only then is the run directory
created and locked. A resume takes the lock first, then reads the stored configuration,
which is the truth: an option that contradicts it is refused.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import logging
import os
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from blockqnn import nsc
from blockqnn.cli._errors import UsageError
from blockqnn.cli._types import (
    fraction,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    widths,
)
from blockqnn.cli.block import _ints
from blockqnn.config import (
    COMPONENTS,
    DEFAULT_EVALUATIONS,
    PAPER_EVALUATIONS,
    SPACES,
    ConfigError,
    SearchConfig,
    make_space,
)
from blockqnn.execution.base import ExecutorLost
from blockqnn.execution.factory import TIMEOUT_LOOKUP_S, TIMEOUT_PER_EPOCH_S
from blockqnn.preflight import SetupError, check_evaluator
from blockqnn.runlock import RunLock, RunLocked
from blockqnn.search import DB_NAME, Progress, Search, create_run, new_strategy, open_run
from blockqnn.store import CandidateState, RunStore, StoreError, uninitialised
from blockqnn.strategies import STRATEGIES

logger = logging.getLogger(__name__)

#: Defaults of the options that define the run (argparse defaults are None, so a resume
#: can tell what was typed).
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
#: Iterations a search's budget is divided into when --batch is not given.
ITERATIONS_PER_SEARCH = 20
#: The search command's user errors; anything else is a bug and keeps its traceback.
USER_ERRORS = (UsageError, SetupError, RunLocked, StoreError, ConfigError)


# --- option types --------------------------------------------------------------------------


def _option(text: str) -> tuple[str, object]:
    """``KEY=VALUE``; VALUE is read as JSON when it is a number, true/false or null, else
    kept as text. Lists and objects are refused (no strategy option takes one)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        return key, value
    if isinstance(parsed, (dict, list)):
        raise argparse.ArgumentTypeError(f"{key}: expected a number, true/false or text")
    return key, parsed


def _executor(text: str) -> str:
    if text == "local":
        return text
    from blockqnn.execution.dask_cluster import scheduler_address

    try:
        return scheduler_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"'local' or a scheduler address: {exc}") from None


# --- the parser ----------------------------------------------------------------------------


def _default(name: str) -> str:
    return f"(default: {DEFAULTS[name]})"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "search",
        help="search for a block (or a NAS-Bench-201 cell)",
        description="Run a search in --run-dir, or continue one with --resume (which uses "
        "the stored configuration; options that contradict it are refused).",
    )
    p.add_argument("--run-dir", required=True, type=Path, help="directory of the run's files")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    p.add_argument(
        "--space",
        choices=sorted(SPACES),
        help="nsc: BlockQNN blocks trained on a dataset; nb201: NAS-Bench-201 cells looked "
        f"up in --table {_default('space')}",
    )
    p.add_argument(
        "--strategy",
        choices=sorted(STRATEGIES),
        help="the paper's Q-learning agent, random search (epsilon 1) or regularized "
        f"evolution {_default('strategy')}",
    )
    budget = p.add_mutually_exclusive_group()
    budget.add_argument(
        "--evaluations",
        type=positive_int,
        help=f"budget of candidates (default: {DEFAULT_EVALUATIONS}, sized for a CPU; "
        f"{PAPER_EVALUATIONS} with --paper)",
    )
    budget.add_argument(
        "--iterations",
        type=positive_int,
        help="budget in iterations of --batch (default 64) candidates",
    )
    p.add_argument(
        "--batch",
        type=positive_int,
        help="candidates per iteration of the epsilon schedule and replay "
        f"(default: budget / {ITERATIONS_PER_SEARCH}, at most 64; 64 with --paper)",
    )
    p.add_argument("--seed", type=int, help=f"seeds the agent and the training {_default('seed')}")
    p.add_argument(
        "--paper",
        action="store_true",
        help="the paper's exact search: its Q-learning agent (preset=paper), reward "
        f"(--mu 1 --rho 8), accounting (--count-duplicates), batch 64 and budget "
        f"{PAPER_EVALUATIONS}",
    )
    p.add_argument(
        "--mu",
        type=non_negative_float,
        help="reward weight of ln(GFLOPs) (default 0; 1 with --paper)",
    )
    p.add_argument(
        "--rho",
        type=non_negative_float,
        help="reward weight of ln(density) (default 0; 8 with --paper)",
    )
    p.add_argument(
        "--count-duplicates",
        action="store_true",
        help="isomorphic re-proposals (answered from the stored result) count towards the "
        "budget, as the paper counts sampled blocks (default: only trainings count)",
    )
    p.add_argument(
        "--max-index",
        type=positive_int,
        help=f"NSC: largest layer index, terminal included {_default('max_index')}",
    )
    p.add_argument("--no-dedupe", action="store_true", help="retrain isomorphic duplicates")
    p.add_argument("--unshaped", action="store_true", help="Q-learning without r_t = r_T / T")
    p.add_argument(
        "--option",
        action="append",
        default=[],
        type=_option,
        metavar="KEY=VALUE",
        help="strategy option, e.g. alpha=0.5, replay=32, population_size=50 (repeatable)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--components",
        choices=sorted(COMPONENTS),
        help="convolution codes as PCCs (paper) or separate ReLU/BN/Conv codes (Fig. 9) "
        f"{_default('components')}",
    )
    add_training_options(p)
    add_rung_options(p)
    add_objective_options(p)
    tab = p.add_argument_group("tabular evaluation (--space nb201)")
    tab.add_argument("--table", help="CSV keyed by NAS-Bench-201 architecture strings")
    tab.add_argument("--reward-column", help="column used as the search reward")
    tab.add_argument("--test-column", help="column reported as final test accuracy")
    tab.add_argument("--cost-column", help="column of evaluation cost in seconds")
    tab.add_argument(
        "--metric-column",
        action="append",
        type=_option,
        metavar="METRIC=COLUMN",
        help="a further metric read from a column, e.g. eval_time_s=test-per-time (repeatable)",
    )
    tab.add_argument(
        "--rung-columns", type=_names, help="with --rungs: each rung's column, e.g. LOW,HIGH"
    )
    p.set_defaults(func=run, user_errors=USER_ERRORS)


def add_training_options(p: argparse.ArgumentParser) -> None:
    """Options of the early-stop training evaluator and of where evaluations run."""
    g = p.add_argument_group("training evaluation (--space nsc)")
    g.add_argument(
        "--dataset",
        help=f"digits, cifar10:PATH, cifar100:PATH, mnist:DIR, imagefolder:PATH "
        f"{_default('dataset')}",
    )
    g.add_argument("--subset", type=positive_int, help="keep this many training images")
    g.add_argument("--image-size", type=positive_int, help="resize images to this size")
    g.add_argument(
        "--val-fraction",
        type=fraction,
        help=f"share of the training images held out for validation {_default('val_fraction')}",
    )
    g.add_argument(
        "--fidelity",
        choices=("paper", "proxy"),
        help="early-stop recipe: the paper's 12 epochs, or a CPU-sized proxy "
        f"{_default('fidelity')}",
    )
    g.add_argument("--epochs", type=positive_int, help="override the recipe's epochs")
    g.add_argument(
        "--preset",
        choices=("cifar", "imagenet"),
        help=f"how blocks are stacked into a network {_default('preset')}",
    )
    g.add_argument("--repeats", "-N", type=positive_int, help="blocks per stage (preset default)")
    g.add_argument("--widths", type=widths, help="stage widths, e.g. 32,64,128")
    g.add_argument(
        "--param-limit", type=positive_int, help="skip candidates over this many parameters"
    )
    g.add_argument(
        "--adapt-repeats",
        action="store_true",
        help="over the limit, lower N until it fits (BlockQNN-L)",
    )
    g.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        help=f"where candidates train {_default('device')}",
    )
    g.add_argument("--amp", action="store_true", help="mixed precision on CUDA")
    g.add_argument(
        "--threads",
        type=positive_int,
        help=f"torch threads per worker; may change on --resume {_default('threads')}",
    )
    x = p.add_argument_group("execution (may change on --resume)")
    x.add_argument(
        "--workers",
        type=non_negative_int,
        help="worker processes; 0 evaluates in this process (default: 1; tabular: 0)",
    )
    x.add_argument("--gpus", type=_ints, help="GPU ids shared out among the workers")
    x.add_argument(
        "--prefetch",
        type=_prefetch,
        default="auto",
        help="Dask: evaluations queued ahead per worker slot; 'auto' (default) queues one"
        " while the master's round trip costs over 1%% of an evaluation",
    )
    x.add_argument(
        "--executor",
        type=_executor,
        default="local",
        help="'local' (process pool) or dask://HOST:PORT, tls://HOST:PORT (a running scheduler)",
    )
    x.add_argument(
        "--eval-timeout",
        type=positive_float,
        metavar="SECONDS",
        help="kill (local) or restart (Dask) a worker whose evaluation runs longer than this "
        "and retry the candidate (default: "
        f"{TIMEOUT_PER_EPOCH_S:g} s per epoch of the recipe; {TIMEOUT_LOOKUP_S:g} s for "
        "tables)",
    )


def add_rung_options(p: argparse.ArgumentParser) -> None:
    """Multi-fidelity evaluation (asynchronous successive halving over rungs)."""
    g = p.add_argument_group("multi-fidelity evaluation")
    g.add_argument(
        "--rungs",
        help="train every candidate a short first rung, only the best share on: 'auto'"
        " (ASHA's epochs budget/3^k, e.g. 1,3,9 for 9 epochs) or budgets, e.g. 1,4,12"
        " (epochs; with --space nb201 the rung columns' costs, e.g. 12,200)",
    )
    g.add_argument(
        "--eta",
        type=positive_float,
        help="rungs: promote 1/ETA of each rung (default: the ratio of the rung budgets)",
    )


def _prefetch(text: str) -> int | str:
    return text if text == "auto" else non_negative_int(text)


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


# --- the configuration the options describe ----------------------------------------------


def _value(args: argparse.Namespace, name: str) -> Any:
    """The option's value, or its default when it was not given."""
    value = getattr(args, name)
    return DEFAULTS[name] if value is None else value


def config_from_args(args: argparse.Namespace) -> SearchConfig:
    """The run configuration the command-line options describe (UsageError if invalid)."""
    budget, batch = budget_and_batch(args)
    options = dict(args.option)
    evaluator = evaluator_from_args(args)
    if args.unshaped:
        options["shaped"] = False
    if _value(args, "strategy") in ("qlearning", "random"):
        options.setdefault("preset", "paper" if args.paper else "default")
    try:
        return SearchConfig(
            space=_value(args, "space"),
            components=_value(args, "components"),
            max_index=_value(args, "max_index"),
            strategy=_value(args, "strategy"),
            strategy_options=options,
            evaluations=budget,
            batch=batch,
            seed=_value(args, "seed"),
            mu=_either(args.mu, 1.0 if args.paper else 0.0),
            rho=_either(args.rho, 8.0 if args.paper else 0.0),
            dedupe=not args.no_dedupe,
            count_duplicates=args.count_duplicates or args.paper,
            evaluator=evaluator,
            rungs=rungs_from_args(args, evaluator),
            eta=args.eta,
            **objective_settings(args),
        )
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def rungs_from_args(args: argparse.Namespace, evaluator: dict) -> list[float]:
    """The rung budgets ``--rungs`` asks for ([] without it; UsageError if invalid)."""
    if not args.rungs:
        return []
    if args.rungs != "auto":
        try:
            return [float(b) for b in args.rungs.split(",")]
        except ValueError:
            raise UsageError(f"--rungs: expected 'auto' or budgets, got {args.rungs!r}") from None
    if evaluator["kind"] != "train":
        raise UsageError("--rungs auto needs training epochs; give the table's rung costs")
    from blockqnn.fidelity import geometric_rungs
    from blockqnn.train.evaluator import TrainingEvaluator

    options = {k: v for k, v in evaluator.items() if k != "kind"}
    epochs = TrainingEvaluator.from_dict(options).early_stop_recipe().epochs
    try:
        return list(geometric_rungs(epochs).budgets)
    except ValueError as exc:
        raise UsageError(f"--rungs auto with {epochs} epochs: {exc}") from None


def budget_and_batch(args: argparse.Namespace) -> tuple[int, int]:
    """The budget: ``--evaluations``, ``--iterations`` of ``--batch`` (64 by default), else
    :data:`DEFAULT_EVALUATIONS` (the paper's with ``--paper``). The batch, when not given,
    divides the budget into :data:`ITERATIONS_PER_SEARCH` iterations (at most 64; 64 with
    ``--paper`` or ``--iterations``)."""
    batch = args.batch or (64 if args.paper or args.iterations else None)
    if args.evaluations:
        budget = args.evaluations
    elif args.iterations:
        budget = args.iterations * batch
    else:
        budget = PAPER_EVALUATIONS if args.paper else DEFAULT_EVALUATIONS
    return budget, batch or max(1, min(64, budget // ITERATIONS_PER_SEARCH))


def _either(value: float | None, default: float) -> float:
    return default if value is None else value


#: Constraint options -> the metric each one limits.
CONSTRAINTS = {"max_latency_ms": "latency_ms", "max_flops": "flops", "max_params": "params"}
#: Steering weight when --objectives is given without --steer-weight.
STEER_WEIGHT = 10.0


def add_objective_options(p: argparse.ArgumentParser) -> None:
    """Reward terms, multi-objective search and constraints (see :mod:`blockqnn.pareto`)."""
    g = p.add_argument_group("reward terms, objectives and constraints")
    g.add_argument(
        "--reward-term",
        action="append",
        type=_reward_term,
        metavar="METRIC=WEIGHT[:REFERENCE]",
        help="penalise WEIGHT * ln(METRIC / REFERENCE) in the reward, e.g. latency_ms=2"
        " (repeatable; adds to --mu/--rho)",
    )
    g.add_argument(
        "--objectives",
        type=lambda text: text.split(","),
        help="e.g. accuracy,latency (or flops, params, any metric): keep the Pareto front",
    )
    g.add_argument(
        "--steer-weight",
        type=non_negative_float,
        help="with --objectives: a cost's ln weight in the agent's reward is drawn in"
        f" [0, this] per iteration (default: {STEER_WEIGHT:g})",
    )
    g.add_argument("--max-latency-ms", type=positive_float, help="fail slower candidates")
    g.add_argument("--max-flops", type=positive_float, help="fail candidates over these GFLOPs")
    g.add_argument("--max-params", type=positive_int, help="fail candidates over these params")


def objective_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The SearchConfig fields the reward-term, objective and constraint options set."""
    return {
        "reward_terms": dict(args.reward_term or ()),
        "objectives": args.objectives or [],
        "steer_weight": _either(args.steer_weight, STEER_WEIGHT),
        "constraints": constraints(args),
    }


def _reward_term(text: str) -> tuple[str, dict[str, float]]:
    name, sep, spec = text.partition("=")
    weight, _, reference = spec.partition(":")
    try:
        term = {"weight": float(weight), **({"reference": float(reference)} if reference else {})}
    except ValueError:
        term = None
    if not sep or not name or term is None:
        raise argparse.ArgumentTypeError(f"expected METRIC=WEIGHT[:REFERENCE], got {text!r}")
    return name, term


def constraints(args: argparse.Namespace) -> dict[str, float]:
    """Metric name -> limit for every constraint option given."""
    given = {metric: getattr(args, option) for option, metric in CONSTRAINTS.items()}
    return {metric: limit for metric, limit in given.items() if limit is not None}


def _metric_columns(pairs: list[tuple[str, object]] | None) -> dict[str, str]:
    return {name: str(column) for name, column in pairs or ()}


def evaluator_from_args(args: argparse.Namespace) -> dict:
    """The evaluator options the command line describes (plain data for the run config)."""
    if _value(args, "space") == "nb201":
        if not (args.table and args.reward_column):
            raise UsageError("--space nb201 needs --table and --reward-column")
        return {
            "kind": "tabular",
            "table": str(Path(args.table).resolve()),
            "reward_column": args.reward_column,
            "test_column": args.test_column,
            "cost_column": args.cost_column,
            "metric_columns": _metric_columns(args.metric_column),
            "rung_columns": args.rung_columns,
        }
    from blockqnn.train.evaluator import TrainingEvaluator

    try:
        evaluator = TrainingEvaluator(
            dataset=_absolute_dataset(_value(args, "dataset")),
            subset=args.subset,
            image_size=args.image_size,
            val_fraction=_value(args, "val_fraction"),
            preset=_value(args, "preset"),
            widths=args.widths,
            repeats=args.repeats,
            conv="plain" if _value(args, "components") == "separate" else "pcc",
            recipe=_value(args, "fidelity"),
            recipe_overrides={"epochs": args.epochs} if args.epochs else {},
            max_params=args.param_limit,
            adapt_repeats=args.adapt_repeats,
            seed=_value(args, "seed"),
            threads=_value(args, "threads"),
            amp=args.amp,
            device=_value(args, "device"),
            limits=constraints(args),
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return {"kind": "train", **evaluator.to_dict()}


def _absolute_dataset(spec: str) -> str:
    """The spec with a relative PATH made absolute, so workers elsewhere find it."""
    name, sep, path = spec.partition(":")
    return f"{name}:{Path(path).resolve()}" if sep and path else spec


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
    "dataset": _evaluator_field("dataset"),
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
#: How a typed value is stored (paths are made absolute).
NORMALISE: dict[str, Callable[[Any], Any]] = {
    "dataset": _absolute_dataset,
    "table": lambda text: str(Path(text).resolve()),
    "metric_column": _metric_columns,
    "reward_term": dict,
}


def conflicts(args: argparse.Namespace, stored: SearchConfig) -> list[str]:
    """The typed options that contradict the stored configuration, as ``--opt V (run: W)``.

    An option counts when it was typed (not None; a flag that is set; ``--option``).
    """
    found = []
    for name, value_of in STORED.items():
        given = getattr(args, name)
        if given is None or given is False:
            continue
        if name == "rungs":  # 'auto' means the rungs of the run's own early stop
            given = rungs_from_args(args, stored.evaluator)
        given = NORMALISE.get(name, lambda v: v)(given)
        if given != value_of(stored):
            found.append(_describe(name, given, value_of(stored)))
    if args.iterations and args.iterations * stored.batch != stored.evaluations:
        found.append(_describe("iterations", args.iterations, stored.evaluations // stored.batch))
    for key, value in args.option:
        if stored.strategy_options.get(key) != value:
            found.append(f"--option {key}={value} (run: {stored.strategy_options.get(key)})")
    return found


def _describe(name: str, given: Any, stored: Any) -> str:
    """``--option VALUE (run: STORED)`` (a flag alone), values as typed on a command line."""
    option = "--" + name.replace("_", "-")
    return option if given is True else f"{option} {_shown(given)} (run: {_shown(stored)})"


def _shown(value: Any) -> str:
    if isinstance(value, tuple | list):
        return ",".join(map(_shown, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


# --- the executor --------------------------------------------------------------------------


def make_executor(args: argparse.Namespace, config: SearchConfig):
    """The executor the options ask for (:func:`blockqnn.execution.factory.make_executor`:
    set up as the stored ``config`` says). Raises SetupError when a Dask scheduler cannot
    be reached or refuses this client."""
    from blockqnn.execution.factory import ExecutorSpec
    from blockqnn.execution.factory import make_executor as build

    spec = ExecutorSpec(
        address=args.executor,
        workers=args.workers,
        gpus=args.gpus,
        prefetch=args.prefetch,
        timeout_s=args.eval_timeout,
    )
    try:
        return build(spec, config)
    except ExecutorLost as exc:
        raise SetupError(str(exc).splitlines()[0]) from None


def _prepare(args: argparse.Namespace, config: SearchConfig):
    """Everything the master checks before it writes: the strategy's options, the
    evaluator (dataset or table, one network) and the executor, which is returned."""
    try:
        new_strategy(config, make_space(config))
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    logger.info("checked: %s", check_evaluator(config, local=args.executor == "local"))
    return make_executor(args, config)


# --- the run directory ---------------------------------------------------------------------


def check_new_run_dir(run_dir: Path) -> None:
    """UsageError unless a new run can be made in ``run_dir`` (checked first, before the
    slow checks): not a file, no run in it yet, its nearest existing ancestor a writable
    directory, a name the file system accepts."""
    try:
        if run_dir.exists() and not run_dir.is_dir():
            raise UsageError(f"--run-dir {run_dir} is a file, not a directory")
        if (run_dir / DB_NAME).exists() and not uninitialised(run_dir / DB_NAME):
            raise UsageError(
                f"{run_dir} already holds a run; continue it with --resume or use another --run-dir"
            )
        existing = next(p for p in (run_dir, *run_dir.parents) if p.exists())
    except OSError as exc:
        raise UsageError(f"--run-dir {run_dir}: cannot create it ({exc.strerror or exc})") from None
    if not existing.is_dir():
        raise UsageError(f"--run-dir {run_dir}: cannot create it ({existing} is not a directory)")
    if not os.access(existing, os.W_OK):
        raise UsageError(f"--run-dir {run_dir}: cannot create it ({existing} is not writable)")


def _make_run_dir(run_dir: Path) -> Path | None:
    """Create ``run_dir`` (and missing parents) for a new run; the topmost directory
    created, None if it existed (UsageError when it cannot be used)."""
    check_new_run_dir(run_dir)
    created = next((p for p in (*reversed(run_dir.parents), run_dir) if not p.exists()), None)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--run-dir {run_dir}: cannot create it ({exc.strerror or exc})") from None
    return created


@contextlib.contextmanager
def _new_run(run_dir: Path) -> Iterator[None]:
    """Make the run directory and hold its lock; if the body fails before the run's
    database exists, remove the directories made (never when another process holds the
    lock, nor when the directory was deleted meanwhile: it is then another run's)."""
    created = _make_run_dir(run_dir)
    with _lock(run_dir) as lock:
        try:
            yield
        except BaseException:
            if created is not None and lock.in_place() and not (run_dir / DB_NAME).exists():
                shutil.rmtree(created, ignore_errors=True)
            raise


@contextlib.contextmanager
def _lock(run_dir: Path) -> Iterator[RunLock]:
    """Hold the run's lock (RunLocked when another process has it)."""
    lock = RunLock(run_dir)
    try:
        lock.acquire()
    except OSError as exc:
        raise UsageError(f"--run-dir {run_dir}: cannot lock it ({exc.strerror or exc})") from None
    try:
        yield lock
    finally:
        lock.release()


# --- running -------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    return _resume(args) if args.resume else _start(args)


def _start(args: argparse.Namespace) -> int:
    check_new_run_dir(args.run_dir)
    config = config_from_args(args)
    with (
        _prepare(args, config) as executor,
        _new_run(args.run_dir),
        create_run(args.run_dir, config) as store,
    ):
        return _search(args, store, config, executor)


def _resume(args: argparse.Namespace) -> int:
    if not _holds_run(args.run_dir):
        raise UsageError(f"{args.run_dir} holds no run to resume (no {DB_NAME})")
    with _lock(args.run_dir):
        store, config = open_run(args.run_dir)
        with store:
            changed = conflicts(args, config)
            if changed:
                raise UsageError(
                    f"--resume continues {args.run_dir} with its stored configuration, which "
                    f"these options contradict: {', '.join(changed)}; drop them, or start a "
                    "new run in another --run-dir"
                )
            if args.threads is not None:
                config = config.with_execution(threads=args.threads)
            with _prepare(args, config) as executor:
                return _search(args, store, config, executor)


def _holds_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` has a run database (False for any path that cannot have one)."""
    try:
        return (run_dir / DB_NAME).is_file()
    except OSError:  # e.g. a name too long
        return False


def _search(args: argparse.Namespace, store: RunStore, config: SearchConfig, executor) -> int:
    """Run the search to its end; print the summary. Exit status: 0, 1 when every
    candidate failed, 3 when the cluster was lost, 130 on Ctrl-C."""
    started = time.monotonic()
    with ProgressBar(config, disabled=args.no_progress) as bar:
        try:
            Search(store, config, executor, progress=bar.update).run()
        except KeyboardInterrupt:
            logger.warning("interrupted: everything finished is saved; continue with --resume")
            return 130
        except ExecutorLost as exc:
            print(f"blockqnn search: {exc}", file=sys.stderr)
            print(f"(the run in {args.run_dir} is saved; --resume continues it)", file=sys.stderr)
            return 3
    print(summary(args.run_dir, store, config, time.monotonic() - started))
    failed = store.candidates([CandidateState.FAILED])
    if failed and not store.counts()[CandidateState.COMPLETE.value]:
        print(
            f"blockqnn search: error: every candidate failed; #{failed[0].id}: {failed[0].error}",
            file=sys.stderr,
        )
        return 1
    return 0


def summary(run_dir: Path, store: RunStore, config: SearchConfig, wall_s: float) -> str:
    """What the run found and what to do next, as printed at its end."""
    counts, reused = store.counts(), store.count_reused()
    complete, failed = counts[CandidateState.COMPLETE.value] - reused, counts["failed"]
    counted = " (counted in the budget)" if config.count_duplicates else ""
    lines = [
        f"run {run_dir}: {complete + failed} evaluations of a budget of {config.evaluations} "
        f"({complete} complete, {failed} failed) and {reused} isomorphic duplicates answered "
        f"from stored results{counted}, in {_duration(wall_s)}",
    ]
    run = shlex.quote(str(run_dir))
    if config.rungs:
        lines.append(rung_summary(store, config, run))
    best = store.top(1)
    if best:
        top = best[0]
        test = "" if top.test_accuracy is None else f", test {top.test_accuracy:.2f}%"
        lines.append(
            f"best: #{top.id} reward {top.reward:.3f}, accuracy {top.accuracy:.2f}%{test}: "
            f"{top.arch}"
        )
    lines += ["next:", f"  blockqnn show {run}", f"  blockqnn report {run}"]
    if best and config.space == "nsc":
        lines.append(f"  blockqnn train --block {run}:top1 --epochs 30 --out {run}/final")
    return "\n".join(lines)


def rung_summary(store: RunStore, config: SearchConfig, run: str) -> str:
    """How far the evaluated candidates went: reached per rung, and stopped below the top."""
    reached = collections.Counter(r.rung for r in store.rung_results())
    budgets = ", ".join(
        f"{reached[rung]} reached {budget:g}" for rung, budget in enumerate(config.rungs)
    )
    stopped = sum(
        1
        for c in store.candidates([CandidateState.COMPLETE])
        if c.reused_from is None and c.reward is None
    )
    return (
        f"rungs: {budgets}; {stopped} stopped below the top were told an estimated reward"
        f" (`blockqnn show {run} --estimated` ranks them too)"
    )


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


class ProgressBar:
    """A tqdm bar on stderr: evaluated/total, iteration, epsilon, best reward, ETA."""

    def __init__(self, config: SearchConfig, disabled: bool) -> None:
        self.config, self.disabled, self.bar = config, disabled, None

    def __enter__(self) -> ProgressBar:
        if not self.disabled:
            from tqdm import tqdm

            self.bar = tqdm(
                total=self.config.evaluations, unit="cand", dynamic_ncols=True, mininterval=0.5
            )
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()

    def update(self, p: Progress) -> None:
        if self.bar is None:
            return
        eps = "-" if p.epsilon is None else f"{p.epsilon:.1f}"
        best = "-" if p.best_reward is None else f"{p.best_reward:.2f}"
        self.bar.set_postfix_str(f"it {p.iteration} eps {eps} best {best}", refresh=False)
        self.bar.update(p.done - self.bar.n)
