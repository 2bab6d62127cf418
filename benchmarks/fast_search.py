"""Standard early stop against multi-fidelity (rung) evaluation, same agent, same budget.

Both arms run the real search loop (``Search``, a run store in a temporary directory,
Q-learning) with the same seeds; each stops when its budget is spent (an evaluation that
would overspend it is dropped). Per arm: candidates evaluated, the block it reports as best
(the leaderboard's top: ranked by measured full-budget rewards only) and how good it is.

Table mode (simulated cost: a rung of budget ``b`` costs ``b``; a promotion costs the
increment)::

    python benchmarks/fast_search.py --table ../shared/data/nb201/cifar10_12ep_200ep.csv \\
        --low-column test-accuracy-12ep --high-column test-accuracy-200ep \\
        --judge-column test-accuracy-200ep-reruns --budget 12000 --seeds 20

The standard arm evaluates every candidate at the low column (cost ``--low-cost``); the
fast arm has rungs ``low-cost, high-cost`` (promoting by default ``low-cost / high-cost``
of each rung: equal cost per rung) and so searches on the high column too. Both arms'
bests are judged by ``--judge-column``, a column neither arm sees (a judge equal to the
low or the high column is refused): judged by the high column, the fast arm would be
judged on the very values it selected its best by, the standard arm never.

CIFAR mode (wall-clock budget per arm, real training)::

    python benchmarks/fast_search.py --cifar ../shared/data/cifar10-jpg.tar.xz \\
        --minutes 20 --seeds 3 --subset 4000 --epochs 9

The arms of a seed run side by side, each with ``--workers`` worker processes of its own,
so all see the same machine load. The standard arm trains every candidate ``--epochs``
epochs; the fast arm uses the rungs of ``blockqnn search --rungs auto`` (``1, 3, 9``: ASHA,
eta 3, for 9 epochs). Each further ``--fast-rungs LIST`` adds a fast arm with those rungs
(named ``fast@LIST``). Judged per seed: each arm's best block at the end, and each fast
arm's best after a third of the budget (``fast_third``): each is trained longer
(``--final-epochs``, the same protocol for all) and tested on all the archive's held-out
test images (10,000 for CIFAR-10). Table mode judges the same by the judge column.

Prints one line per seed and arm, then the means (+- standard error over seeds), the
**paired** difference of the standard arm (the default: rungs off) against every other
judged name (mean +- standard error over seeds), the seeds in which the fast arm matched
the standard arm's final incumbent (by the store's test accuracy: the judge column on a
table, the reward on CIFAR) within a third of the budget, and last one JSON line
``{"standard": {"final": F, "evaluated": E}, "fast": {...}, "fast_third": {"final": F}}``
(plus ``fast@LIST`` and ``fast@LIST_third`` per further fast arm):
``final`` is the mean over seeds of the judged block's judge-column (table) or test accuracy
after the longer training (CIFAR); each judged name but ``standard`` also has ``paired``:
``[mean, se]`` of standard minus it over the seeds both judged.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import multiprocessing
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from blockqnn.config import SearchConfig, make_evaluator
from blockqnn.evaluation import Step
from blockqnn.execution import InlineExecutor
from blockqnn.execution.base import Executor, Outcome
from blockqnn.fidelity import Rungs, expected_cost, geometric_rungs
from blockqnn.search import Search, create_run
from nb201 import (  # this folder's NB201 benchmark (a script's folder is on sys.path)
    check_judge,
    mean_se,
)

STANDARD, FAST, THIRD = "standard", "fast", "_third"


class BudgetSpent(Exception):
    """The arm's budget is spent: the search stops (its store keeps what finished)."""


@dataclass
class BudgetedExecutor:
    """Passes everything to ``inner`` and stops the search (:class:`BudgetSpent`) at the
    first outcome that would overspend ``budget`` (that call's outcomes are dropped).

    ``cost_of`` prices an outcome (simulated cost); None measures wall-clock seconds since
    construction instead (checked on every ``wait``). ``spent`` logs ``(total, cid)`` per
    accepted outcome.
    """

    inner: Executor
    budget: float
    cost_of: Callable[[Outcome], float] | None = None
    total: float = 0.0
    spent: list[tuple[float, int]] = field(default_factory=list)
    _start: float = field(default_factory=time.monotonic)

    @property
    def slots(self) -> int:
        return self.inner.slots

    def submit(self, cid: int, arch: str, step: Step | None = None) -> None:
        if step is None:
            self.inner.submit(cid, arch)
        else:
            self.inner.submit(cid, arch, step)

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        outcomes = self.inner.wait(timeout)
        if self.cost_of is None and time.monotonic() - self._start > self.budget:
            raise BudgetSpent(f"{self.budget:g} s are over")
        for outcome in outcomes:
            cost = self._cost(outcome)
            if self.total + cost > self.budget:
                raise BudgetSpent(f"spent {self.total:g} of {self.budget:g}")
            self.total += cost
            self.spent.append((self.total, outcome.cid))
        return outcomes

    def _cost(self, outcome: Outcome) -> float:
        if self.cost_of is None:
            return time.monotonic() - self._start - self.total
        return self.cost_of(outcome)

    def close(self) -> None:
        self.inner.close()


@dataclass(frozen=True)
class ArmResult:
    """One arm's search: candidates evaluated, the reported best, and its incumbents."""

    evaluated: int
    best_arch: str | None
    best_value: float | None  #: the best's high-column accuracy (table) / reward (CIFAR)
    best_test: float | None  #: the best's test accuracy from the store (table: judge column)
    incumbents: list[tuple[float, float, str]]  #: (cost or seconds, test/value, arch)


def run_arm(config: SearchConfig, executor: BudgetedExecutor, run_dir: Path) -> ArmResult:
    """Run one arm's search until its budget is spent; summarise its store."""
    store = create_run(run_dir, config)
    with store:
        try:
            Search(store, config, executor).run()
        except BudgetSpent as stop:
            logging.getLogger(__name__).info("%s: %s", run_dir.name, stop)
        best = store.top(1)
        finished = {c.id: c for c in store.candidates() if c.finished is not None}
        evaluated = sum(
            1 for c in finished.values() if c.state.value == "complete" and c.reused_from is None
        )
    incumbents = _incumbents(executor.spent, finished)
    top = best[0] if best else None
    return ArmResult(
        evaluated=evaluated,
        best_arch=None if top is None else top.arch,
        best_value=None if top is None else top.reward,
        best_test=None if top is None else top.test_accuracy,
        incumbents=incumbents,
    )


def _incumbents(spent: list[tuple[float, int]], finished: dict) -> list[tuple[float, float, str]]:
    """The leaderboard's top over the run: ``(spent, its test accuracy or reward, its
    arch)`` each time it changes (a candidate counts at its last accepted outcome)."""
    last = {cid: index for index, (_, cid) in enumerate(spent)}
    best_reward, out = None, []
    for index, (cost, cid) in enumerate(spent):
        candidate = finished.get(cid)
        if last[cid] != index or candidate is None or candidate.reward is None:
            continue
        if best_reward is None or candidate.reward > best_reward:
            best_reward = candidate.reward
            value = candidate.test_accuracy
            out.append((cost, candidate.reward if value is None else value, candidate.arch))
    return out


def matching(
    standard: ArmResult, fast: ArmResult, unit: str, name: str = FAST
) -> tuple[str, float | None]:
    """When the fast arm ``name`` matched ``standard``'s final incumbent (by the store's
    test accuracy, else the reward): a line to print and the cost/time it took (None:
    never)."""
    if not standard.incumbents:
        return "the standard arm measured no candidate", None
    found_at, target, _ = standard.incumbents[-1]
    matched = time_to_match(fast.incumbents, target)
    when = "never" if matched is None else f"at {matched:.0f} {unit}"
    line = (
        f"{name} reached the standard's final incumbent ({target:.2f}) {when}"
        f" (the standard arm found it at {found_at:.0f} {unit})"
    )
    return line, matched


def time_to_match(incumbents: list[tuple[float, float, str]], target: float) -> float | None:
    """The first spent cost/time at which the incumbent reaches ``target`` (None: never)."""
    return next((spent for spent, value, _ in incumbents if value >= target), None)


def incumbent_at(
    incumbents: list[tuple[float, float, str]], spent: float
) -> tuple[float, float, str] | None:
    """The leaderboard's top when ``spent`` cost/time was used (None: none yet)."""
    held = [incumbent for incumbent in incumbents if incumbent[0] <= spent]
    return held[-1] if held else None


# --- table mode -------------------------------------------------------------------------


def table_configs(args: argparse.Namespace) -> dict[str, SearchConfig]:
    """The two arms' run configurations (plain agent, reward = accuracy)."""
    table = str(Path(args.table).resolve())
    rungs = [args.low_cost, args.high_cost]
    planned = {
        "standard": args.budget / args.low_cost,
        "fast": args.budget / expected_cost(Rungs(tuple(rungs))),
    }
    check_judge(args.judge_column, {args.low_column: "both arms", args.high_column: "the fast arm"})
    common = {"kind": "tabular", "table": table, "test_column": args.judge_column}
    evaluators = {
        "standard": {**common, "reward_column": args.low_column},
        "fast": {
            **common,
            "reward_column": args.high_column,
            "rung_columns": [args.low_column, args.high_column],
        },
    }
    configs = {}
    for arm in (STANDARD, FAST):
        evaluations = max(1, int(planned[arm]))
        configs[arm] = SearchConfig(
            space="nb201",
            evaluations=evaluations,
            batch=max(1, evaluations // 20),
            mu=0.0,
            rho=0.0,
            evaluator=evaluators[arm],
            rungs=rungs if arm == FAST else [],
        )
    return configs


def table_arm(arm: str, config: SearchConfig, seed: int, args: argparse.Namespace, root: Path):
    """One table-mode arm for one seed (inline evaluation, simulated cost)."""
    config = dataclasses.replace(config, seed=seed)
    plain = arm == STANDARD

    def cost_of(outcome: Outcome) -> float:
        if outcome.result is None:
            return 0.0
        return args.low_cost if plain else outcome.result.cost_s

    executor = BudgetedExecutor(InlineExecutor(make_evaluator(config)), args.budget, cost_of)
    return run_arm(config, executor, root / f"{arm}-{seed}")


# --- CIFAR mode -------------------------------------------------------------------------


def cifar_configs(args: argparse.Namespace) -> dict[str, SearchConfig]:
    """The two arms' run configurations: the proxy recipe for ``--epochs`` epochs."""
    from blockqnn.train.evaluator import TrainingEvaluator

    evaluator = TrainingEvaluator(
        dataset=f"imagefolder:{Path(args.cifar).resolve()}",
        subset=args.subset,
        image_size=args.image_size,
        val_fraction=args.val_fraction,
        widths=(16, 32, 64),
        repeats=1,
        recipe="proxy",
        recipe_overrides={"epochs": args.epochs, "lr_step": max(1, args.epochs // 2)},
        threads=1,
    )
    configs = {}
    for arm, rungs in fast_arms(args).items():
        per_candidate = args.epochs if rungs is None else expected_cost(rungs)
        evaluations = max(1, int(args.expected_evaluations * args.epochs / per_candidate))
        configs[arm] = SearchConfig(
            space="nsc",
            evaluations=evaluations,
            batch=max(1, evaluations // 10),
            evaluator={"kind": "train", **evaluator.to_dict()},
            rungs=[] if rungs is None else [int(b) for b in rungs.budgets],
        )
    return configs


def fast_arms(args: argparse.Namespace) -> dict[str, Rungs | None]:
    """CIFAR mode's arms and their rungs: the standard arm (None), ``fast`` with the rungs
    of ``--rungs auto``, and a ``fast@LIST`` arm per ``--fast-rungs LIST``."""
    arms: dict[str, Rungs | None] = {STANDARD: None, FAST: geometric_rungs(args.epochs)}
    for text in args.fast_rungs:
        try:
            rungs = Rungs(tuple(int(b) for b in text.split(",")))
        except ValueError as exc:
            raise SystemExit(f"--fast-rungs {text}: {exc}") from None
        if rungs.budgets[-1] != args.epochs:
            raise SystemExit(f"--fast-rungs {text}: the last rung must be --epochs {args.epochs}")
        arms[f"{FAST}@{text}"] = rungs
    return arms


def cifar_arm(arm: str, config: SearchConfig, seed: int, args: argparse.Namespace, root: Path):
    """One CIFAR-mode arm for one seed: real training in worker processes, wall clock."""
    from blockqnn.execution import ProcessExecutor

    config = dataclasses.replace(config, seed=seed)
    inner = ProcessExecutor(make_evaluator(config), args.workers)
    executor = BudgetedExecutor(inner, 60 * args.minutes)
    return run_arm(config, executor, root / f"{arm}-{seed}")


def final_accuracy(arch: str, args: argparse.Namespace, out: Path, seed: int) -> float:
    """Test accuracy of ``arch`` after the longer training (same for every arm): trained on
    the search's training subset, tested on all the archive's test images (the subset's
    share of them would add a needless 1.5 points of noise at 1,000 images)."""
    import torch

    from blockqnn.data import load_dataset
    from blockqnn.model import cifar
    from blockqnn.train.final import train_final
    from blockqnn.train.recipes import FINAL

    torch.set_num_threads(1)
    spec = f"imagefolder:{Path(args.cifar).resolve()}"
    options = {"image_size": args.image_size, "val_fraction": args.val_fraction}
    whole = load_dataset(spec, **options)
    dataset = dataclasses.replace(
        load_dataset(spec, subset=args.subset, **options), x_test=whole.x_test, y_test=whole.y_test
    )
    config = cifar(
        widths=(16, 32, 64),
        repeats=1,
        num_classes=dataset.num_classes,
        in_channels=dataset.channels,
        image_size=dataset.image_size,
    )
    metrics = train_final(
        arch, dataset, config, FINAL["cifar"], args.final_epochs, out, seed=seed, device="cpu"
    )
    return metrics["test_accuracy"]


# --- one seed ----------------------------------------------------------------------------


def judged_names(arms: list[str]) -> list[str]:
    """What is judged per seed: each arm's best at the end, and each fast arm's best after a
    third of the budget (the target: ``fast_third`` at least as good as ``standard``)."""
    return [name for arm in arms for name in ((arm,) if arm == STANDARD else (arm, arm + THIRD))]


def search_seed(
    runner: Callable, configs: dict[str, SearchConfig], seed: int, args, root: Path
) -> dict[str, ArmResult]:
    """The arms of one seed; side by side in threads in CIFAR mode (each arm has its own
    worker processes, so all see the same machine load), one after the other for a table."""
    if args.table:
        return {arm: runner(arm, config, seed, args, root) for arm, config in configs.items()}
    with ThreadPoolExecutor(len(configs)) as pool:
        futures = {
            arm: pool.submit(runner, arm, config, seed, args, root)
            for arm, config in configs.items()
        }
        return {arm: future.result() for arm, future in futures.items()}


def judged(results: dict[str, ArmResult], budget: float) -> dict[str, tuple[str, float] | None]:
    """Per judged name (:func:`judged_names`): the reported block and its test accuracy from
    the store (the high column for a table, the reward on CIFAR), None for none."""
    out: dict[str, tuple[str, float] | None] = {}
    for arm, result in results.items():
        top = None if result.best_arch is None else (result.best_arch, result.best_test)
        out[arm] = top
        if arm != STANDARD:
            third = incumbent_at(result.incumbents, budget / 3)
            out[arm + THIRD] = None if third is None else (third[2], third[1])
    return out


def cifar_finals(archs: dict[str, str | None], args, root: Path, seed: int) -> dict:
    """CIFAR mode: each distinct judged block trained longer (in as many processes as the
    search used) and tested on the held-out test images."""
    distinct = sorted({a for a in archs.values() if a is not None})
    context = multiprocessing.get_context("spawn")
    processes = len(fast_arms(args)) * args.workers
    with ProcessPoolExecutor(processes, mp_context=context) as pool:
        futures = {
            arch: pool.submit(final_accuracy, arch, args, root / f"final-{seed}-{i}", seed)
            for i, arch in enumerate(distinct)
        }
        accuracy = {arch: future.result() for arch, future in futures.items()}
    return {name: None if a is None else accuracy[a] for name, a in archs.items()}


# --- main -------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--table", help="two-fidelity CSV (table mode)")
    mode.add_argument("--cifar", help="CIFAR-10 archive (CIFAR mode)")
    parser.add_argument("--seeds", type=int, default=3)
    t = parser.add_argument_group("table mode")
    t.add_argument("--low-column", default="test-accuracy-12ep")
    t.add_argument("--high-column", default="test-accuracy-200ep")
    t.add_argument(
        "--judge-column",
        default="test-accuracy-200ep-reruns",
        help="judges both arms' bests; never a column an arm searches on",
    )
    t.add_argument("--low-cost", type=float, default=12.0)
    t.add_argument("--high-cost", type=float, default=200.0)
    t.add_argument("--budget", type=float, default=12000.0, help="simulated cost per arm")
    c = parser.add_argument_group("CIFAR mode")
    c.add_argument("--minutes", type=float, default=20.0, help="wall clock per arm and seed")
    c.add_argument("--workers", type=int, default=1, help="worker processes per arm")
    c.add_argument("--subset", type=int, default=4000, help="training images")
    c.add_argument("--image-size", type=int, default=16)
    c.add_argument("--val-fraction", type=float, default=0.4, help="validation share")
    c.add_argument("--epochs", type=int, default=9, help="full early-stop epochs")
    c.add_argument("--final-epochs", type=int, default=20, help="longer training of the bests")
    c.add_argument(
        "--expected-evaluations",
        type=int,
        default=50,
        help="what the standard arm evaluates in --minutes (its epsilon schedule's length)",
    )
    c.add_argument(
        "--fast-rungs",
        action="append",
        default=[],
        metavar="LIST",
        help="rungs of a further fast arm, e.g. 3,9 (repeatable)",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    configs = table_configs(args) if args.table else cifar_configs(args)
    runner = table_arm if args.table else cifar_arm
    unit, budget = ("cost", args.budget) if args.table else ("s", 60 * args.minutes)
    arms = list(configs)
    results: dict[str, list[ArmResult]] = {arm: [] for arm in arms}
    finals: dict[str, list[float | None]] = {name: [] for name in judged_names(arms)}
    matched: dict[str, list[float | None]] = {arm: [] for arm in arms[1:]}
    with tempfile.TemporaryDirectory(prefix="fast-search-") as tmp:
        root = Path(tmp)
        for seed in range(args.seeds):
            seed_results = search_seed(runner, configs, seed, args, root)
            blocks = judged(seed_results, budget)
            archs = {name: None if got is None else got[0] for name, got in blocks.items()}
            seed_finals = (
                {name: None if got is None else got[1] for name, got in blocks.items()}
                if args.table
                else cifar_finals(archs, args, root, seed)
            )
            for arm, result in seed_results.items():
                results[arm].append(result)
                print(
                    f"seed {seed} {arm:>8}: evaluated {result.evaluated:4d}, best"
                    f" {result.best_arch} (search {result.best_value}),"
                    f" final {seed_finals[arm]}"
                )
                if arm in matched:
                    print(
                        f"seed {seed} {arm} at 1/3: {archs[arm + THIRD]},"
                        f" final {seed_finals[arm + THIRD]}"
                    )
                    line, when = matching(seed_results[STANDARD], result, unit, arm)
                    matched[arm].append(when)
                    print(f"seed {seed}: {line}", flush=True)
            for name, value in seed_finals.items():
                finals[name].append(value)
    print_summary(results, finals, matched, budget, unit)


def shown_mean_se(values: list[float]) -> str:
    """``mean +- standard error`` (n/a for no value)."""
    if not values:
        return "n/a"
    return "{:.3f} +- {:.3f}".format(*mean_se(values))


def match_times(matched: list[float | None], unit: str) -> str:
    """Each seed's time to match (up to 10 seeds), else their median ("never" counts as
    later than any time)."""
    if len(matched) <= 10:
        return "times: " + ", ".join("never" if w is None else f"{w:.0f} {unit}" for w in matched)
    ordered = sorted(matched, key=lambda w: math.inf if w is None else w)
    median = ordered[(len(ordered) - 1) // 2]
    never = matched.count(None)
    shown = "never" if median is None else f"{median:.0f} {unit}"
    return f"median time {shown} (never within the budget in {never} seeds)"


def print_summary(results, finals, matched, budget: float, unit: str) -> None:
    """The means over seeds, the paired differences, and last one JSON line (see the
    module's docstring). ``finals``: judged name -> per seed value (None: nothing judged)."""
    paired_diffs = {
        name: [s - v for s, v in zip(finals[STANDARD], per_seed, strict=True) if None not in (s, v)]
        for name, per_seed in finals.items()
        if name != STANDARD
    }
    finals = {name: [v for v in per_seed if v is not None] for name, per_seed in finals.items()}
    for name, values in finals.items():
        arm = name.removesuffix(THIRD)
        evaluated = statistics.fmean(r.evaluated for r in results[arm])
        label = f"{arm} at 1/3 of the budget" if name.endswith(THIRD) else name
        print(
            f"{label:>26}: final {shown_mean_se(values)} (mean +- SE over"
            f" {len(values)} seeds); {arm} evaluated {evaluated:.1f}"
        )
    for arm, times in matched.items():
        third = sum(1 for when in times if when is not None and when <= budget / 3)
        print(
            f"{arm} matched the standard arm's final incumbent within 1/3 of the budget in"
            f" {third} of {len(times)} seeds; {match_times(times, unit)}"
        )
    summary = {
        name: {"final": statistics.fmean(values) if values else None}
        for name, values in finals.items()
    }
    for name, diffs in paired_diffs.items():
        if diffs:
            diff, se = mean_se(diffs)
            summary[name]["paired"] = [diff, se]
            print(f"paired standard - {name}: {diff:+.3f} +- {se:.3f} ({len(diffs)} seeds)")
    for arm, arm_results in results.items():
        summary[arm]["evaluated"] = statistics.fmean(r.evaluated for r in arm_results)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
