"""Search quality on a NAS-Bench-201 table: the default Q-learning agent against the
paper's agent, random search, regularized evolution and Optuna's TPE sampler, same
budget, same seeds, same accounting.

For each strategy and seed, the strategy proposes cells until ``--evaluations`` distinct
cells have been looked up in the table (the reward column is the search signal). A
re-proposal of a cell already looked up is answered with its stored reward and does not
count (``--count-duplicates``: it counts, as the paper counts sampled blocks); this is the
accounting of ``blockqnn search``. The result of a search is the judged
(``--judge-column``, also spelt ``--test-column``) accuracy of the cell with the best reward
found, and that best reward. The judge must be a column no strategy searches on: a judge
equal to the reward column is refused. (On a table whose reward cell is re-measured by
other training seeds, such as ``test-accuracy-200ep-reruns`` of ``cifar10_12ep_200ep.csv``,
that re-measurement is the honest judge: the best-reward cell is partly the luckiest
measurement, and a judge that shares its noise rewards finding it.)

Prints, per strategy, mean +- standard error over seeds of both, the mean best-so-far
curve (judged accuracy of the incumbent) and the strategy's own overhead (time to propose
and learn per evaluation, look-up excluded); then the **paired** difference of the first
strategy (the default agent) against every other, judged and by reward, mean +- standard
error over the seeds both ran. The last line is one JSON object keyed by strategy name
(``{"mean": judged mean, "se": ..., "reward": ..., "judged": [per seed], "paired":
{"judged": [diff, se], "reward": [diff, se]} or null for the first, ...}``).

    python benchmarks/nb201.py --table ../shared/data/nb201/cifar10_valid.csv \\
        --reward-column valid-accuracy --judge-column test-accuracy \\
        --evaluations 300 --seeds 100 \\
        --strategies 'qlearning;qlearning:preset="paper";random;evolution;optuna-tpe'

Strategy specs are ``NAME`` or ``NAME:key=json,...`` (options of the strategy).
``--seeds-of SPEC=N`` runs a slow strategy (TPE) on the first N seeds only; its paired
differences are then over those N seeds.
``optuna-tpe`` (needs ``pip install optuna``, a dev dependency) samples each of the six
edges as a categorical parameter with Optuna's ``TPESampler(seed=seed)``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Hashable, Mapping
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from typing import Any

from blockqnn.nb201 import NUM_EDGES, OPS, NB201Space, format_ops, parse_ops
from blockqnn.strategies import Strategy, iterations_for, make_strategy
from blockqnn.tabular import Entry, best, load_table

CURVE_POINTS = 10


class OptunaTPE(Strategy):
    """Optuna's TPE sampler behind the ask/tell contract (benchmark peer; no resume).

    A proposal that never came from the sampler (a random walk after repeated duplicates)
    is added to the study as a finished trial.
    """

    kind = "optuna-tpe"

    def __init__(self, space: NB201Space, *, seed: int, budget: int, batch: int, **options):
        import optuna

        super().__init__(space, seed=seed, budget=budget, batch=batch)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = optuna.samplers.TPESampler(seed=seed, **options)
        self._study = optuna.create_study(direction="maximize", sampler=sampler)
        self._distribution = optuna.distributions.CategoricalDistribution(OPS)
        self._pending: dict[str, list[Any]] = {}

    def _ask(self) -> Hashable:
        trial = self._study.ask()
        ops = [trial.suggest_categorical(f"edge{i}", OPS) for i in range(NUM_EDGES)]
        arch = format_ops(ops)
        self._pending.setdefault(arch, []).append(trial)
        return arch

    def _observe(self, arch: Hashable, reward: float) -> None:
        waiting = self._pending.get(arch)
        if waiting:
            self._study.tell(waiting.pop(), reward)
            return
        import optuna

        params = {f"edge{i}": op for i, op in enumerate(parse_ops(arch))}
        distributions = dict.fromkeys(params, self._distribution)
        self._study.add_trial(
            optuna.trial.create_trial(params=params, distributions=distributions, value=reward)
        )

    def _state(self) -> dict:
        raise NotImplementedError("the benchmark's TPE peer does not resume")

    def _restore(self, state: dict) -> None:
        raise NotImplementedError("the benchmark's TPE peer does not resume")


def parse_strategy(spec: str) -> tuple[str, dict]:
    """``"qlearning:alpha=0.5,replay=32"`` -> ("qlearning", {"alpha": 0.5, "replay": 32})."""
    name, _, options = spec.partition(":")
    pairs = (item.split("=", 1) for item in options.split(",") if item)
    return name, {key: _value(value) for key, value in pairs}


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text  # a bare word such as paper


def build(spec: str, seed: int, evaluations: int, batch: int) -> Strategy:
    name, options = parse_strategy(spec)
    space = NB201Space()
    if name == OptunaTPE.kind:
        return OptunaTPE(space, seed=seed, budget=evaluations, batch=batch, **options)
    return make_strategy(name, space, seed=seed, budget=evaluations, batch=batch, **options)


def one_run(
    spec: str,
    seed: int,
    columns: tuple[str, str, str, str | None],
    evaluations: int,
    batch: int,
    count_duplicates: bool,
) -> dict:
    """One search on the table ``columns`` = (path, reward, test, cost column) names;
    returns the incumbent's judged accuracy and reward, curve and overhead."""
    table: Mapping[str, Entry] = load_table(*columns)  # read once per process
    agent = build(spec, seed, evaluations, batch)
    seen: dict[Hashable, float] = {}
    best_reward, incumbent_test, curve = float("-inf"), None, []
    overhead, cost, asks = 0.0, 0.0, 0
    while len(curve) < evaluations:
        start = time.perf_counter()
        arch = agent.ask()
        asks += 1
        if arch in seen and not count_duplicates:
            agent.tell(arch, seen[arch], duplicate=True)
            overhead += time.perf_counter() - start
            if agent.repeats >= 2 * agent.max_repeats:
                break  # the strategy cannot find an unseen cell: the space is exhausted
            continue
        asked = time.perf_counter()
        entry = table[arch]
        looked_up = time.perf_counter()
        agent.tell(arch, entry.reward)
        overhead += (asked - start) + (time.perf_counter() - looked_up)
        seen[arch] = entry.reward
        cost += entry.cost
        if entry.reward > best_reward:
            best_reward, incumbent_test = entry.reward, entry.test
        curve.append(incumbent_test)
    return {
        "test": incumbent_test,
        "reward": best_reward,
        "curve": curve,
        "overhead": overhead / max(1, len(curve)),
        "cost": cost,
        "asks": asks,
    }


def checkpoints(evaluations: int) -> list[int]:
    """Evaluation counts (1-based) at which the curve is reported."""
    return sorted(
        {max(1, round(evaluations * (i + 1) / CURVE_POINTS)) for i in range(CURVE_POINTS)}
    )


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and standard error of the mean."""
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.fmean(values), spread / len(values) ** 0.5


def paired(reference: list[dict], other: list[dict], key: str) -> tuple[float, float]:
    """Mean +- standard error over seeds of ``reference[i][key] - other[i][key]`` for the
    seeds both ran (runs are in seed order, from seed 0)."""
    return mean_se([a[key] - b[key] for a, b in zip(reference, other, strict=False)])


def summarise(runs: list[dict], evaluations: int) -> dict:
    mean, se = mean_se([r["test"] for r in runs])
    reward, reward_se = mean_se([r["reward"] for r in runs])
    points = [n for n in checkpoints(evaluations) if all(len(r["curve"]) >= n for r in runs)]
    return {
        "mean": mean,
        "se": se,
        "std": statistics.stdev(r["test"] for r in runs) if len(runs) > 1 else 0.0,
        "reward": reward,
        "reward_se": reward_se,
        "curve": {n: statistics.fmean(r["curve"][n - 1] for r in runs) for n in points},
        "overhead_ms": 1e3 * statistics.fmean(r["overhead"] for r in runs),
        "asks_per_eval": statistics.fmean(r["asks"] / len(r["curve"]) for r in runs),
        "cost_s": statistics.fmean(r["cost"] for r in runs),
        "judged": [r["test"] for r in runs],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", required=True, help="CSV keyed by NB201 arch strings")
    parser.add_argument("--reward-column", required=True, help="the search signal")
    parser.add_argument(
        "--judge-column",
        "--test-column",
        dest="judge_column",
        required=True,
        help="judges the best-reward cell (never the reward column)",
    )
    parser.add_argument("--cost-column", help="seconds per evaluation (summed per search)")
    parser.add_argument("--evaluations", type=int, default=100, help="distinct cells per search")
    parser.add_argument("--seeds", type=int, default=100, help="searches per strategy")
    parser.add_argument(
        "--strategies",
        default='qlearning;qlearning:preset="paper";random;evolution;optuna-tpe',
        help="';'-separated, each NAME or NAME:key=json,... (e.g. qlearning:alpha=0.5)",
    )
    parser.add_argument(
        "--batch", type=int, help="candidates per iteration (default: budget / 20, at least 1)"
    )
    parser.add_argument(
        "--count-duplicates", action="store_true", help="re-proposals count (paper)"
    )
    parser.add_argument(
        "--seeds-of",
        action="append",
        default=[],
        metavar="SPEC=N",
        help="run strategy SPEC on seeds 0..N-1 only (repeatable)",
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="processes")
    args = parser.parse_args()
    check_judge(args.judge_column, {args.reward_column: "every strategy"})
    seeds_of = parse_seeds_of(args.seeds_of)
    columns = (args.table, args.reward_column, args.judge_column, args.cost_column)
    table = load_table(*columns)
    batch = args.batch or max(1, args.evaluations // 20)
    optimum_arch, optimum = best(table, by="test")
    top_reward = max(entry.reward for entry in table.values())
    print(
        f"table: {len(table)} cells; best judged accuracy {optimum.test:.2f} ({optimum_arch}); "
        f"best reward {top_reward:.2f}"
    )
    print(
        f"budget {args.evaluations} evaluations, batch {batch} "
        f"({iterations_for(args.evaluations, batch)} iterations), {args.seeds} seeds, "
        f"duplicates {'counted' if args.count_duplicates else 'free'}"
    )
    results, per_seed = {}, {}
    with ProcessPoolExecutor(args.workers) as pool:
        for spec in args.strategies.split(";"):
            seeds = seeds_of.get(spec, args.seeds)
            run = partial(
                one_run,
                spec,
                columns=columns,
                evaluations=args.evaluations,
                batch=batch,
                count_duplicates=args.count_duplicates,
            )
            runs = list(pool.map(run, range(seeds), chunksize=max(1, seeds // 8)))
            per_seed[spec] = runs
            results[spec] = summary = summarise(runs, args.evaluations)
            curve = " ".join(f"{n}:{v:.2f}" for n, v in summary["curve"].items())
            print(
                f"{spec:>22}: judged {summary['mean']:.2f} +- {summary['se']:.2f}  "
                f"reward {summary['reward']:.2f} +- {summary['reward_se']:.2f}  "
                f"overhead {summary['overhead_ms']:.3f} ms/eval  "
                f"asks/eval {summary['asks_per_eval']:.2f}  curve {curve}"
            )
    print_paired(results, per_seed)
    print(json.dumps(results))


def print_paired(results: dict[str, dict], per_seed: dict[str, list[dict]]) -> None:
    """Adds ``paired`` to each summary (the first strategy's minus this one's, judged and by
    reward; None for the first) and prints it."""
    reference, *others = per_seed
    results[reference]["paired"] = None
    for spec in others:
        judged = paired(per_seed[reference], per_seed[spec], "test")
        reward = paired(per_seed[reference], per_seed[spec], "reward")
        results[spec]["paired"] = {"judged": list(judged), "reward": list(reward)}
        seeds = min(len(per_seed[reference]), len(per_seed[spec]))
        print(
            f"paired {reference} - {spec}: judged {judged[0]:+.3f} +- {judged[1]:.3f}  "
            f"reward {reward[0]:+.3f} +- {reward[1]:.3f}  ({seeds} seeds)"
        )


def check_judge(judge: str, searched: Mapping[str, str]) -> None:
    """Refuse (SystemExit, one line) a judge column an arm searches on (``searched``:
    column -> the arms that search on it)."""
    if judge in searched:
        raise SystemExit(
            f"--judge-column {judge}: {searched[judge]} searches on this column; "
            "judge on a column no arm sees (e.g. a re-measurement)"
        )


def parse_seeds_of(items: list[str]) -> dict[str, int]:
    """``["optuna-tpe=30"]`` -> {"optuna-tpe": 30} (SystemExit for a malformed item)."""
    out = {}
    for item in items:
        spec, _, count = item.rpartition("=")
        if not spec or not count.isdigit() or int(count) < 1:
            raise SystemExit(f"--seeds-of {item}: expected SPEC=N with N >= 1")
        out[spec] = int(count)
    return out


if __name__ == "__main__":
    main()
