"""Search quality on a NAS-Bench-201 table: Q-learning against random search and
regularized evolution, same budget, same seeds.

For each strategy and seed, the strategy proposes ``--evaluations`` cells (each looked up
in the table: the reward column is the search signal); the result is the test-column
accuracy of the cell with the best reward found. Prints, per strategy, the mean and
standard deviation over seeds, the mean best-so-far curve (test accuracy of the incumbent)
and the strategy's own overhead (time to propose and learn per evaluation, table look-up
excluded). The last line is one JSON object keyed by strategy name.

    python benchmarks/nb201.py --table ../shared/data/nb201/cifar10_valid.csv \
        --reward-column valid-accuracy --test-column test-accuracy \
        --evaluations 100 --seeds 100 --strategies 'qlearning;qlearning:alpha=0.5;random;evolution'
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial

from blockqnn.nb201 import NB201Space
from blockqnn.strategies import iterations_for, make_strategy
from blockqnn.tabular import Entry, best, load_table

CURVE_POINTS = 10


def parse_strategy(spec: str) -> tuple[str, dict]:
    """``"qlearning:alpha=0.5,replay=32"`` -> ("qlearning", {"alpha": 0.5, "replay": 32})."""
    name, _, options = spec.partition(":")
    pairs = (item.split("=", 1) for item in options.split(",") if item)
    return name, {key: json.loads(value) for key, value in pairs}


def one_run(spec: str, seed: int, table: dict[str, Entry], evaluations: int, batch: int) -> dict:
    """One search; returns the incumbent's test accuracy, curve, overhead and cost."""
    name, options = parse_strategy(spec)
    agent = make_strategy(name, NB201Space(), seed=seed, budget=evaluations, batch=batch, **options)
    best_reward, incumbent_test, curve = float("-inf"), None, []
    overhead, cost = 0.0, 0.0
    for _ in range(evaluations):
        start = time.perf_counter()
        arch = agent.ask()
        asked = time.perf_counter()
        entry = table[arch]
        looked_up = time.perf_counter()
        agent.tell(arch, entry.reward)
        overhead += (asked - start) + (time.perf_counter() - looked_up)
        cost += entry.cost
        if entry.reward > best_reward:
            best_reward, incumbent_test = entry.reward, entry.test
        curve.append(incumbent_test)
    return {
        "test": incumbent_test,
        "curve": curve,
        "overhead": overhead / evaluations,
        "cost": cost,
    }


def checkpoints(evaluations: int) -> list[int]:
    """Evaluation counts (1-based) at which the curve is reported."""
    return sorted(
        {max(1, round(evaluations * (i + 1) / CURVE_POINTS)) for i in range(CURVE_POINTS)}
    )


def summarise(runs: list[dict], evaluations: int) -> dict:
    tests = [r["test"] for r in runs]
    points = checkpoints(evaluations)
    return {
        "mean": statistics.fmean(tests),
        "std": statistics.stdev(tests) if len(tests) > 1 else 0.0,
        "curve": {n: statistics.fmean(r["curve"][n - 1] for r in runs) for n in points},
        "overhead_ms": 1e3 * statistics.fmean(r["overhead"] for r in runs),
        "cost_s": statistics.fmean(r["cost"] for r in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", required=True)
    parser.add_argument("--reward-column", required=True)
    parser.add_argument("--test-column", required=True)
    parser.add_argument("--cost-column")
    parser.add_argument("--evaluations", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument(
        "--strategies",
        default="qlearning;random;evolution",
        help="';'-separated, each NAME or NAME:key=value,... (e.g. qlearning:alpha=0.5)",
    )
    parser.add_argument(
        "--batch", type=int, help="candidates per iteration (default: budget / 20, at least 1)"
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    args = parser.parse_args()
    table = dict(load_table(args.table, args.reward_column, args.test_column, args.cost_column))
    batch = args.batch or max(1, args.evaluations // 20)
    optimum_arch, optimum = best(table, by="test")
    print(f"table: {len(table)} cells; best test accuracy {optimum.test:.2f} ({optimum_arch})")
    print(
        f"budget {args.evaluations} evaluations, batch {batch} "
        f"({iterations_for(args.evaluations, batch)} iterations), {args.seeds} seeds"
    )
    results = {}
    with ProcessPoolExecutor(args.workers) as pool:
        separator = ";" if ";" in args.strategies else ","
        for name in args.strategies.split(separator):
            run = partial(one_run, name, table=table, evaluations=args.evaluations, batch=batch)
            runs = list(pool.map(run, range(args.seeds), chunksize=max(1, args.seeds // 8)))
            results[name] = summary = summarise(runs, args.evaluations)
            curve = " ".join(f"{n}:{v:.2f}" for n, v in summary["curve"].items())
            print(
                f"{name:>10}: test {summary['mean']:.2f} +- {summary['std']:.2f}  "
                f"overhead {summary['overhead_ms']:.3f} ms/eval  curve {curve}"
            )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
