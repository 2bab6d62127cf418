"""Multi-objective search on a NAS-Bench-201 table: hypervolume of the found Pareto front.

Objectives: the table's validation accuracy (maximised) and ``eval_time_s``, the table's
``test-per-time`` column (seconds to run the 10,000 test images once: a measured
inference cost, minimised). Each arm runs the real search (run store, inline executor)
with ``--objectives accuracy,eval_time_s`` for ``--evaluations`` trained candidates and seeds
0..``--seeds``-1; the result is the hypervolume of the front of the evaluated cells, as a
share of the whole table's front's hypervolume; the reference point is that front's nadir
(its lowest accuracy and highest time), so only cells in the front's region count. Arms:

- ``qlearning``: the agent (default preset) steered by a random weight per iteration on
  ln(eval time) in its reward (``--steer-weight``, the default way);
- ``qlearning-paper``: the same with the paper's exact agent (``preset=paper``);
- ``random``: random search (the reward is ignored);
- ``evolution``: regularized evolution on the same steered reward;
- ``...-accuracy``: the same strategy rewarded by accuracy alone (steer weight 0), to
  measure what the steering adds.

Prints a table, then one JSON line.

    python benchmarks/pareto_nb201.py --table ../shared/data/nb201/cifar10_valid.csv \
        --evaluations 300 --seeds 10
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from blockqnn.config import SearchConfig
from blockqnn.execution.factory import ExecutorSpec, make_executor
from blockqnn.pareto import front, gains, hypervolume, objectives
from blockqnn.search import Search, create_run
from blockqnn.store import CandidateState
from blockqnn.tabular import load_table

ROOT = Path(__file__).resolve().parents[1]
OBJECTIVES = ("accuracy", "eval_time_s")
COLUMNS = {"eval_time_s": "test-per-time"}
#: arm -> (strategy, its options, steer weight or None for the command-line default)
ARMS = {
    "qlearning": ("qlearning", {}, None),
    "qlearning-accuracy": ("qlearning", {}, 0.0),
    "qlearning-paper": ("qlearning", {"preset": "paper"}, None),
    "qlearning-paper-accuracy": ("qlearning", {"preset": "paper"}, 0.0),
    "random": ("random", {}, None),
    "evolution": ("evolution", {}, None),
    "evolution-accuracy": ("evolution", {}, 0.0),
}


def table_points(table: str) -> list[tuple[float, ...]]:
    """Every cell of the table as an objective vector (maximising)."""
    entries = load_table(table, "valid-accuracy", metric_columns=COLUMNS)
    objs = objectives(OBJECTIVES)
    return [gains({"accuracy": e.reward, **e.metrics}, objs) for e in entries.values()]


def run_arm(arm: str, seed: int, args: argparse.Namespace, runs: Path) -> list[tuple[float, ...]]:
    """The objective vectors of the candidates one search evaluated."""
    strategy, options, weight = ARMS[arm]
    config = SearchConfig(
        space="nb201",
        strategy=strategy,
        strategy_options=options,
        evaluations=args.evaluations,
        batch=max(1, args.evaluations // 20),
        seed=seed,
        objectives=list(OBJECTIVES),
        steer_weight=args.steer_weight if weight is None else weight,
        evaluator={
            "kind": "tabular",
            "table": str(Path(args.table).resolve()),
            "reward_column": "valid-accuracy",
            "metric_columns": COLUMNS,
        },
    )
    with create_run(runs / f"{arm}-{seed}", config) as store:
        Search(store, config, make_executor(ExecutorSpec(), config)).run()
        done = store.candidates([CandidateState.COMPLETE])
    objs = objectives(OBJECTIVES)
    return [v for c in done if (v := gains(c.named(), objs)) is not None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default=ROOT.parent / "shared/data/nb201/cifar10_valid.csv")
    parser.add_argument("--evaluations", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--steer-weight", type=float, default=10.0)
    args = parser.parse_args()
    best = front(table_points(args.table), lambda p: p)
    reference = tuple(min(p[i] for p in best) for i in range(len(OBJECTIVES)))
    optimum = hypervolume(best, reference)
    print(f"table front: {len(best)} cells, nadir {reference}, hypervolume {optimum:.4f}")
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for arm in ARMS:
            shares = []
            for seed in range(args.seeds):
                points = run_arm(arm, seed, args, Path(tmp))
                shares.append(hypervolume(front(points, lambda p: p), reference) / optimum)
            results[arm] = shares
            mean, sd = statistics.fmean(shares), statistics.stdev(shares)
            print(f"{arm:>28}: hypervolume {mean:.4f} +- {sd:.4f} of the table's", flush=True)
    summary = {
        arm: {"mean": statistics.fmean(v), "sd": statistics.stdev(v), "shares": v}
        for arm, v in results.items()
    }
    print(json.dumps({"benchmark": "pareto_nb201", "evaluations": args.evaluations, **summary}))


if __name__ == "__main__":
    main()
