"""``blockqnn search``: run (or ``--resume``) a search in a run directory."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from blockqnn import nsc
from blockqnn.cli.block import _ints
from blockqnn.config import SearchConfig
from blockqnn.execution.base import ExecutorLost
from blockqnn.search import Progress, Search, create_run, open_run

logger = logging.getLogger(__name__)

#: Iterations a search's budget is divided into when --batch is not given.
ITERATIONS_PER_SEARCH = 20


def register(subparsers) -> None:
    p = subparsers.add_parser("search", help="search for a block (or a NAS-Bench-201 cell)")
    p.add_argument("--run-dir", required=True, type=Path, help="directory of the run's files")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    p.add_argument("--space", choices=("nsc", "nb201"), default="nsc")
    p.add_argument("--strategy", choices=("qlearning", "random", "evolution"), default="qlearning")
    p.add_argument("--evaluations", type=int, help="budget of candidates (default: 64 x 178)")
    p.add_argument("--iterations", type=int, help="budget in iterations of --batch candidates")
    p.add_argument(
        "--batch",
        type=int,
        help="candidates per iteration of the epsilon schedule and replay "
        f"(default: budget / {ITERATIONS_PER_SEARCH}, at most 64; 64 with --paper)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--paper",
        action="store_true",
        help="the paper's exact search: its Q-learning agent (preset=paper), reward "
        "(--mu 1 --rho 8), accounting (--count-duplicates), batch 64 and budget 11,392",
    )
    p.add_argument(
        "--mu", type=float, help="reward weight of ln(GFLOPs) (default 0; 1 with --paper)"
    )
    p.add_argument(
        "--rho", type=float, help="reward weight of ln(density) (default 0; 8 with --paper)"
    )
    p.add_argument(
        "--count-duplicates",
        action="store_true",
        help="isomorphic re-proposals (answered from the stored result) count towards the "
        "budget, as the paper counts sampled blocks (default: only trainings count)",
    )
    p.add_argument("--max-index", type=int, default=nsc.DEFAULT_MAX_INDEX)
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
        choices=("pcc", "separate"),
        default="pcc",
        help="convolution codes as PCCs (paper) or separate ReLU/BN/Conv codes (Fig. 9)",
    )
    add_training_options(p)
    add_rung_options(p)
    tab = p.add_argument_group("tabular evaluation (--space nb201)")
    tab.add_argument("--table", help="CSV keyed by NAS-Bench-201 architecture strings")
    tab.add_argument("--reward-column", help="column used as the search reward")
    tab.add_argument("--test-column", help="column reported as final test accuracy")
    tab.add_argument("--cost-column", help="column of evaluation cost in seconds")
    tab.add_argument(
        "--rung-columns", type=_names, help="with --rungs: each rung's column, e.g. LOW,HIGH"
    )
    p.set_defaults(func=run)


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
        type=float,
        help="rungs: promote 1/ETA of each rung (default: the ratio of the rung budgets)",
    )


def config_from_args(args: argparse.Namespace) -> SearchConfig:
    """The run configuration the command-line options describe."""
    if args.evaluations and args.iterations:
        raise ValueError("give --evaluations or --iterations, not both")
    batch = args.batch or (64 if args.paper or not args.evaluations else None)
    budget = args.evaluations or (args.iterations or 178) * batch
    batch = batch or max(1, min(64, budget // ITERATIONS_PER_SEARCH))
    options = dict(args.option)
    evaluator = evaluator_from_args(args)
    if args.unshaped:
        options["shaped"] = False
    if args.strategy in ("qlearning", "random"):
        options.setdefault("preset", "paper" if args.paper else "default")
    return SearchConfig(
        space=args.space,
        components=args.components,
        max_index=args.max_index,
        strategy=args.strategy,
        strategy_options=options,
        evaluations=budget,
        batch=batch,
        seed=args.seed,
        mu=_either(args.mu, 1.0 if args.paper else 0.0),
        rho=_either(args.rho, 8.0 if args.paper else 0.0),
        dedupe=not args.no_dedupe,
        count_duplicates=args.count_duplicates or args.paper,
        evaluator=evaluator,
        rungs=rungs_from_args(args, evaluator),
        eta=args.eta,
    )


def rungs_from_args(args: argparse.Namespace, evaluator: dict) -> list[float]:
    """The rung budgets ``--rungs`` asks for ([] without it)."""
    if not args.rungs:
        return []
    if args.rungs != "auto":
        return [float(b) for b in args.rungs.split(",")]
    if evaluator["kind"] != "train":
        raise ValueError("--rungs auto needs training epochs; give the table's rung costs")
    from blockqnn.fidelity import geometric_rungs
    from blockqnn.train.evaluator import TrainingEvaluator

    options = {k: v for k, v in evaluator.items() if k != "kind"}
    epochs = TrainingEvaluator.from_dict(options).early_stop_recipe().epochs
    return list(geometric_rungs(epochs).budgets)


def _prefetch(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number, got {text!r}") from None


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _either(value: float | None, default: float) -> float:
    return default if value is None else value


def _option(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def add_training_options(p: argparse.ArgumentParser) -> None:
    """Options of the early-stop training evaluator and of where evaluations run."""
    g = p.add_argument_group("training evaluation (--space nsc)")
    g.add_argument("--dataset", default="digits", help="digits, cifar10:PATH, imagefolder:PATH...")
    g.add_argument("--subset", type=int, help="keep this many training images")
    g.add_argument("--image-size", type=int, help="resize images to this size")
    g.add_argument("--val-fraction", type=float, default=0.1)
    g.add_argument(
        "--fidelity",
        choices=("paper", "proxy"),
        default="proxy",
        help="early-stop recipe: the paper's 12 epochs, or a CPU-sized proxy",
    )
    g.add_argument("--epochs", type=int, help="override the recipe's epochs")
    g.add_argument("--preset", choices=("cifar", "imagenet"), default="cifar")
    g.add_argument("--repeats", "-N", type=int, help="blocks per stage (preset default)")
    g.add_argument("--widths", type=_ints, help="stage widths, e.g. 32,64,128")
    g.add_argument("--param-limit", type=int, help="skip candidates over this many parameters")
    g.add_argument(
        "--adapt-repeats",
        action="store_true",
        help="over the limit, lower N until it fits (BlockQNN-L)",
    )
    g.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    g.add_argument("--amp", action="store_true", help="mixed precision on CUDA")
    x = p.add_argument_group("execution")
    x.add_argument(
        "--workers", type=int, help="worker processes (default: 1; tabular runs in-process)"
    )
    x.add_argument("--threads", type=int, default=1, help="torch threads per worker")
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
        default="local",
        help="'local' (process pool) or dask://HOST:PORT (an existing scheduler)",
    )


def evaluator_from_args(args: argparse.Namespace) -> dict:
    """The evaluator options the command line describes (plain data for the run config)."""
    if args.space == "nb201":
        if not (args.table and args.reward_column):
            raise ValueError("--space nb201 needs --table and --reward-column")
        return {
            "kind": "tabular",
            "table": str(Path(args.table).resolve()),
            "reward_column": args.reward_column,
            "test_column": args.test_column,
            "cost_column": args.cost_column,
            "rung_columns": args.rung_columns,
        }
    from blockqnn.train.evaluator import TrainingEvaluator

    evaluator = TrainingEvaluator(
        dataset=_absolute_dataset(args.dataset),
        subset=args.subset,
        image_size=args.image_size,
        val_fraction=args.val_fraction,
        preset=args.preset,
        widths=args.widths,
        repeats=args.repeats,
        conv="plain" if args.components == "separate" else "pcc",
        recipe=args.fidelity,
        recipe_overrides={"epochs": args.epochs} if args.epochs else {},
        max_params=args.param_limit,
        adapt_repeats=args.adapt_repeats,
        seed=args.seed,
        threads=args.threads,
        amp=args.amp,
        device=args.device,
    )
    return {"kind": "train", **evaluator.to_dict()}


def _absolute_dataset(spec: str) -> str:
    """The spec with a relative PATH made absolute, so workers elsewhere find it."""
    name, sep, path = spec.partition(":")
    return f"{name}:{Path(path).resolve()}" if sep and path else spec


def make_executor(args: argparse.Namespace, config: SearchConfig):
    """The executor the options ask for: in-process, a local process pool, or Dask."""
    from blockqnn.config import make_evaluator

    evaluator = make_evaluator(config)
    if args.executor != "local":
        from blockqnn.execution.dask_cluster import DaskExecutor

        gpu = {"GPU": 1} if args.device == "cuda" else None
        return DaskExecutor(args.executor, evaluator, resources=gpu, prefetch=args.prefetch)
    workers = args.workers if args.workers is not None else int(config.space == "nsc")
    if workers < 1:
        from blockqnn.execution import InlineExecutor

        return InlineExecutor(evaluator)
    from blockqnn.execution import ProcessExecutor

    return ProcessExecutor(evaluator, workers, threads=args.threads, gpus=args.gpus)


def run(args: argparse.Namespace) -> int:
    if args.resume:
        store, config = open_run(args.run_dir)
    else:
        config = config_from_args(args)
        store = create_run(args.run_dir, config)
    with store, ProgressBar(config, disabled=args.no_progress) as bar:
        try:
            search = Search(store, config, make_executor(args, config), progress=bar.update)
            counts = search.run()
        except KeyboardInterrupt:
            logger.warning("interrupted: everything finished is saved; continue with --resume")
            return 130
        except ExecutorLost as exc:
            print(f"blockqnn search: {exc}", file=sys.stderr)
            print(f"(the run in {args.run_dir} is saved; --resume continues it)", file=sys.stderr)
            return 3
        best = store.top(1)
    print(f"run {args.run_dir}: {counts}")
    if best:
        print(f"best reward {best[0].reward:.3f} (accuracy {best[0].accuracy:.2f}): {best[0].arch}")
    return 0


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
