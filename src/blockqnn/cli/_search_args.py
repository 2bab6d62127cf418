"""The options of ``blockqnn search`` (argparse) and what they become: a
:class:`~blockqnn.options.RunOptions` (what defines the run) and an
:class:`~blockqnn.execution.factory.ExecutorSpec` (where evaluations run)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from blockqnn.cli._types import (
    fraction,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    widths,
)
from blockqnn.cli.block import _ints
from blockqnn.config import COMPONENTS, DEFAULT_EVALUATIONS, PAPER_EVALUATIONS, SPACES
from blockqnn.execution.factory import (
    TIMEOUT_LOOKUP_S,
    TIMEOUT_PER_EPOCH_S,
    ExecutorSpec,
    executor_address,
)
from blockqnn.options import DEFAULTS, ITERATIONS_PER_SEARCH, STEER_WEIGHT, RunOptions
from blockqnn.strategies import STRATEGIES

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
    try:
        return executor_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# --- the parser ----------------------------------------------------------------------------


def _default(name: str) -> str:
    return f"(default: {DEFAULTS[name]})"


def add_search_options(p: argparse.ArgumentParser) -> None:
    """Every option of ``blockqnn search``."""
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
        f"(--mu 1 --rho 8), accounting (--count-duplicates), batch 64, budget "
        f"{PAPER_EVALUATIONS} and early stop (--fidelity paper); options given override them",
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
        f"{_default('fidelity')}; paper with --paper",
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
    g.add_argument(
        "--trainer",
        metavar="MODULE:QUALNAME",
        help="your own training function instead of the recipe's, called in the workers as"
        " train(network, budget) and returning the accuracy (see the README's Python section)",
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
        "--cluster",
        metavar="FILE",
        help="start Dask workers from a cluster spec (YAML/JSON/TOML: kind slurm|pbs|local|"
        "kubernetes, minimum, maximum, options), scaled to the candidates in flight and "
        "stopped at the end",
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


def run_options(args: argparse.Namespace) -> RunOptions:
    """The options that define the run, as given (None where not given)."""
    return RunOptions(**{f.name: getattr(args, f.name) for f in dataclasses.fields(RunOptions)})


def executor_spec(args: argparse.Namespace) -> ExecutorSpec:
    """Where the options say evaluations run (OptionError for --cluster with --executor)."""
    return ExecutorSpec(
        address=args.executor,
        workers=args.workers,
        gpus=args.gpus,
        prefetch=args.prefetch,
        timeout_s=args.eval_timeout,
        cluster=args.cluster,
    )
