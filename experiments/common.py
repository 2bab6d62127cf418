"""What the experiment scripts share: paths, the CPU proxy, searches on the NAS-Bench-201
table and on the proxy, per-iteration curves, plots and the JSON output.

A *curve* is a dict of equal-length lists keyed ``iteration`` (0-based), ``epsilon``,
``mean`` (mean value of the iteration's candidates), ``top1`` (best so far) and ``top5``
(mean of the five best distinct architectures so far), as in the paper's Fig. 8a/10.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from blockqnn import nsc
from blockqnn.config import SearchConfig
from blockqnn.execution import Executor
from blockqnn.execution.factory import ExecutorSpec
from blockqnn.execution.factory import make_executor as build_executor
from blockqnn.nb201 import NB201Space
from blockqnn.report.curves import (
    IterationStats,
    Point,
    epsilon_bands,
    iteration_stats,
    stats_of,
)
from blockqnn.search import Search, create_run, open_run
from blockqnn.store import CandidateState
from blockqnn.strategies import EpsilonSchedule, Strategy, iterations_for, make_strategy
from blockqnn.tabular import load_table

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
NB201_TABLE = DATA / "nb201" / "cifar10_valid.csv"
CIFAR_ARCHIVE = DATA / "cifar10-jpg.tar.xz"
DOCS = ROOT / "docs" / "experiments"
RUNS = ROOT / "runs" / "experiments"

#: The CPU proxy of CIFAR-10 the searches train on (TrainingEvaluator options).
CIFAR_PROXY: dict[str, Any] = {
    "dataset": f"imagefolder:{CIFAR_ARCHIVE}",
    "subset": 2000,
    "image_size": 16,
    "widths": [8, 16, 32],
    "repeats": 1,
    "recipe": "proxy",
    "recipe_overrides": {"epochs": 3},
    "seed": 0,
}
#: The --quick proxy: 300 of scikit-learn's 8x8 digits, one epoch, no restarts, tiny widths.
QUICK_PROXY: dict[str, Any] = {
    "dataset": "digits",
    "subset": 300,
    "widths": [4, 8, 8],
    "repeats": 1,
    "recipe": "proxy",
    "recipe_overrides": {"epochs": 1, "max_restarts": 0},
    "seed": 0,
}
TOP = 5

Curve = dict[str, list[float]]
#: An arm of a comparison: (label, strategy name, strategy options).
Arm = tuple[str, str, dict[str, Any]]


def parse_args(doc: str) -> argparse.Namespace:
    """The options every experiment takes; creates the output folder."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny version (smoke test)")
    parser.add_argument("--out", type=Path, default=DOCS, help="folder for the JSON and PNG")
    parser.add_argument("--runs", type=Path, default=RUNS, help="folder for search run dirs")
    parser.add_argument(
        "--workers", type=int, help="worker processes (default 2; --quick: 1, in-process)"
    )
    args = parser.parse_args()
    if args.workers is None:
        args.workers = 1 if args.quick else 2
    args.out.mkdir(parents=True, exist_ok=True)
    return args


def proxy_evaluator(quick: bool, **overrides: Any) -> dict[str, Any]:
    """``SearchConfig.evaluator`` for the training proxy (``overrides`` replace options)."""
    return {"kind": "train", **(QUICK_PROXY if quick else CIFAR_PROXY), **overrides}


def machine() -> dict[str, Any]:
    """Where the numbers were measured."""
    import torch

    return {
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cuda": torch.cuda.is_available(),
    }


def write_json(out: Path, name: str, data: dict[str, Any]) -> Path:
    """Write ``data`` to ``out/name.json`` and say so."""
    path = out / f"{name}.json"
    path.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {path}")
    return path


# --- curves and plots ---------------------------------------------------------------------


def trace_curve(values: Sequence[float], keys: Sequence[str], batch: int) -> Curve:
    """Per-iteration mean, top-1 and top-5 of ``values`` told in order, ``batch`` per
    iteration; ``keys`` name the architectures (top-5 counts each one once). The numbers
    are the report's (:func:`blockqnn.report.curves.stats_of`)."""
    pairs = enumerate(zip(keys, values, strict=True))
    curve = stats_curve(stats_of(Point(i // batch, key, value) for i, (key, value) in pairs))
    del curve["epsilon"]  # a table trace has no epsilon stages to shade
    return curve


def mean_curve(curves: Sequence[Curve]) -> Curve:
    """The element-wise mean of curves of equal length."""
    columns = {key: zip(*(c[key] for c in curves), strict=True) for key in curves[0]}
    return {key: [statistics.fmean(v) for v in rows] for key, rows in columns.items()}


def stats_curve(stats: Iterable[IterationStats]) -> Curve:
    """A run's :class:`IterationStats` as a curve."""
    stats = list(stats)
    return {
        "iteration": [s.iteration for s in stats],
        "epsilon": [s.epsilon for s in stats],
        "mean": [s.mean for s in stats],
        "top1": [s.top1 for s in stats],
        "top5": [s.top5 for s in stats],
    }


def plot(curves: dict[str, Curve], batch: int, path: Path, ylabel: str = "Reward") -> Path:
    """Two panels: the mean of each iteration (left) and the top-1 (solid) and top-5
    (dashed) so far (right) of every labelled curve; the first curve's epsilon stages are
    shaded, darker for more exploration."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.5), dpi=100, layout="constrained")
    left, right = fig.subplots(1, 2)
    for index, (label, curve) in enumerate(curves.items()):
        x = [i + 1 for i in curve["iteration"]]
        left.plot(x, curve["mean"], color=f"C{index}", marker=".", label=label)
        right.plot(x, curve["top1"], color=f"C{index}", lw=2, label=f"{label} top-1")
        right.plot(x, curve["top5"], color=f"C{index}", ls="--", label=f"{label} top-{TOP}")
    first = next(iter(curves.values()))
    for ax, title in ((left, "mean of the iteration"), (right, f"top-1 / top-{TOP} so far")):
        _shade(ax, first)
        ax.set_title(title, pad=14)
        ax.set(xlabel=f"iteration (batch of {batch})", ylabel=ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=150)
    print(f"wrote {path}")
    return path


def _shade(ax: Any, curve: Curve) -> None:
    """Grey bands of equal epsilon, labelled at the top."""
    epsilons = curve.get("epsilon") or [None] * len(curve["iteration"])
    pairs = zip(curve["iteration"], epsilons, strict=True)
    stats = [IterationStats(i, 0, 0.0, 0.0, 0.0, e) for i, e in pairs]
    for first, last, epsilon in epsilon_bands(stats):
        ax.axvspan(first + 0.5, last + 1.5, color="0.5", alpha=0.04 + 0.16 * epsilon, lw=0)
        x, where = (first + last) / 2 + 1, ax.get_xaxis_transform()
        ax.text(x, 1.0, f"{epsilon:.1f}", fontsize=6, color="0.35", ha="center", transform=where)


def summary_line(label: str, curve: Curve) -> str:
    """``label``'s last-iteration mean, final top-1 and top-5."""
    return (
        f"{label:>24}: last-iteration mean {curve['mean'][-1]:6.2f}  "
        f"top-1 {curve['top1'][-1]:6.2f}  top-5 {curve['top5'][-1]:6.2f}"
    )


# --- NAS-Bench-201 table ------------------------------------------------------------------


def table_search(arm: Arm, seed: int, evaluations: int, batch: int) -> list[str]:
    """The distinct architectures one strategy evaluates on the NB201 table (valid-accuracy
    as reward), in order, with the search loop's accounting: a re-proposal is answered
    with its stored reward and does not count."""
    table = load_table(NB201_TABLE, "valid-accuracy", "test-accuracy")
    agent = arm_strategy(arm, seed, evaluations, batch)
    archs: list[str] = []
    seen: set[str] = set()
    while len(archs) < evaluations and agent.repeats < 2 * agent.max_repeats:
        arch = agent.ask()
        agent.tell(arch, table[arch].reward, duplicate=arch in seen)
        if arch not in seen:
            seen.add(arch)
            archs.append(arch)
    return archs


def arm_strategy(arm: Arm, seed: int, evaluations: int, batch: int) -> Strategy:
    """The strategy of ``arm`` on the NB201 space."""
    _, name, options = arm
    return make_strategy(name, NB201Space(), seed=seed, budget=evaluations, batch=batch, **options)


def table_arms(arms: Sequence[Arm], seeds: int, evaluations: int, batch: int) -> dict[str, Any]:
    """Every arm on seeds ``0..seeds-1``: the seed-averaged curve, the final figures (mean
    and sd over seeds) and the fewest leading proposals any seed shares with the first arm."""
    table = load_table(NB201_TABLE, "valid-accuracy", "test-accuracy")
    traces = {arm[0]: [table_search(arm, s, evaluations, batch) for s in range(seeds)]
              for arm in arms}  # fmt: skip
    first = traces[arms[0][0]]
    phases = _epsilons(arm_strategy(arms[0], 0, evaluations, batch))  # the first arm's
    result = {}
    for arm in arms:
        label = arm[0]
        curves = [trace_curve([table[a].reward for a in t], t, batch) for t in traces[label]]
        curve = mean_curve(curves)
        curve["epsilon"] = _epsilons(arm_strategy(arm, 0, evaluations, batch))
        result[label] = {
            "curve": curve,
            "final": _table_final(traces[label], curves, table, phases),
            "shared_prefix_min": min(
                shared_prefix(a, b) for a, b in zip(first, traces[label], strict=True)
            ),
        }
    return result


def _epsilons(agent: Strategy) -> list[float]:
    """The epsilon of every iteration of ``agent``'s budget (1 where it has none)."""
    iterations = iterations_for(agent.budget, agent.batch)
    schedule = getattr(agent, "schedule", EpsilonSchedule.constant(1.0))
    return [schedule.epsilon(i) for i in range(iterations)]


def _table_final(
    traces: list[list[str]], curves: list[Curve], table: Any, epsilons: list[float]
) -> dict[str, Any]:
    """Final figures over seeds: top-1/top-5 reward, test accuracy of the incumbent, mean
    reward of the exploitation iterations (epsilon < 1 in ``epsilons``, the first arm's
    schedule) and of the last iteration."""
    exploit = [i for i, e in enumerate(epsilons) if e < 1.0]
    per_seed = {
        "top1": [c["top1"][-1] for c in curves],
        "top5": [c["top5"][-1] for c in curves],
        "test_of_best": [table[max(t, key=lambda a: table[a].reward)].test for t in traces],
        "exploit_mean": [statistics.fmean(c["mean"][i] for i in exploit) for c in curves],
        "last_mean": [c["mean"][-1] for c in curves],
    }
    return {key: _mean_sd(values) for key, values in per_seed.items()}


def _mean_sd(values: list[float]) -> dict[str, float]:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "sd": sd, "n": len(values)}


def shared_prefix(a: Sequence[str], b: Sequence[str]) -> int:
    """How many leading proposals two runs share."""
    return next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )


# --- searches that train ------------------------------------------------------------------


def proxy_scale(quick: bool) -> tuple[int, int]:
    """Candidates and batch of one proxy search (tiny in quick mode)."""
    return (8, 4) if quick else (128, 16)


def proxy_searches(
    configs: dict[str, SearchConfig], args: argparse.Namespace, prefix: str, stem: str
) -> dict[str, Any]:
    """Run the labelled proxy searches (:func:`search_arms`) and plot them as ``stem``."""
    first = next(iter(configs.values()))
    print(
        f"CIFAR proxy: {first.evaluations} candidates, batch {first.batch}, "
        f"{args.workers} worker(s)"
    )
    results = search_arms(configs, args.runs, prefix, args.workers)
    plot_runs(results, first.batch, args.out, stem)
    return results


def arm_configs(
    arms: Sequence[Arm], evaluations: int, batch: int, evaluator: dict[str, Any], seed: int = 0
) -> dict[str, SearchConfig]:
    """One search configuration per arm on the NSC space, the same seed for all."""
    return {
        label: SearchConfig(
            strategy=name,
            strategy_options=options,
            evaluations=evaluations,
            batch=batch,
            seed=seed,
            evaluator=evaluator,
        )
        for label, name, options in arms
    }


def make_executor(config: SearchConfig, workers: int) -> Executor:
    """``workers`` local worker processes, or the calling process for one."""
    return build_executor(ExecutorSpec(workers=0 if workers == 1 else workers), config)


def search_arms(
    configs: dict[str, SearchConfig], runs: Path, prefix: str, workers: int
) -> dict[str, Any]:
    """Run one fresh search per labelled configuration (run dirs ``runs/prefix-N``) and
    return each one's :func:`run_figures` plus its wall time."""
    results = {}
    for index, (label, config) in enumerate(configs.items()):
        run_dir = runs / f"{prefix}-{index}"
        start = time.perf_counter()
        run_search(run_dir, config, workers)
        results[label] = {**run_figures(run_dir), "wall_s": time.perf_counter() - start}
        print(summary_line(label, results[label]["curves"]["reward"]), flush=True)
    return results


def run_search(run_dir: Path, config: SearchConfig, workers: int) -> None:
    """A fresh search in ``run_dir`` (an earlier run there is deleted), run to its budget."""
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with create_run(run_dir, config) as store:
        Search(store, config, make_executor(config, workers)).run()


def run_figures(run_dir: Path) -> dict[str, Any]:
    """A finished NSC run's reward and accuracy curves, mean block length per iteration,
    counts, proposals in order and its five best candidates."""
    store, config = open_run(run_dir)
    with store:
        candidates, best = store.candidates(), store.top(TOP)
    done = [c for c in candidates if c.state == CandidateState.COMPLETE]
    reused = config.count_duplicates
    return {
        "curves": {
            m: stats_curve(iteration_stats(candidates, m, with_reused=reused))
            for m in ("reward", "accuracy")
        },
        "layers": _mean_layers(done),
        "trained": sum(c.reused_from is None for c in done),
        "reused": sum(c.reused_from is not None for c in done),
        "failed": len(candidates) - len(done),
        "archs": [c.arch for c in candidates],
        "best": [
            {
                "arch": c.arch,
                "accuracy": c.accuracy,
                "reward": c.reward,
                "gflops": c.metric("flops"),
            }
            for c in best
        ],
    }


def _mean_layers(done: list) -> list[float]:
    """Mean number of layers (terminal excluded) of each iteration's completed blocks."""
    by_iteration: dict[int, list[int]] = {}
    for c in done:
        layers = len(nsc.body(nsc.parse(c.arch, 10**6)))
        by_iteration.setdefault(c.iteration, []).append(layers)
    return [statistics.fmean(by_iteration[i]) for i in sorted(by_iteration)]


def plot_runs(results: dict[str, Any], batch: int, out: Path, stem: str) -> None:
    """``stem.png`` (reward) and ``stem_accuracy.png`` for labelled :func:`search_arms`."""
    panels = (("reward", "", "Reward"), ("accuracy", "_accuracy", "Accuracy (%)"))
    for metric, suffix, ylabel in panels:
        curves = {label: r["curves"][metric] for label, r in results.items()}
        plot(curves, batch, out / f"{stem}{suffix}.png", ylabel)


def drop_archs(results: dict[str, Any]) -> dict[str, Any]:
    """``results`` without the (long) proposal lists, for the JSON."""
    return {label: {k: v for k, v in r.items() if k != "archs"} for label, r in results.items()}
