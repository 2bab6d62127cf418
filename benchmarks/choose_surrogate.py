"""How the default agent's surrogate settings were chosen: on the search signal only.

Runs ``benchmarks/nb201.py``'s searches (same accounting) for each strategy spec and
budget, but loads the table **without** any judged column: what it compares is the best
reward each search found (the search's own signal), mean +- standard error over seeds and
paired against the first spec. The judged columns are never read, so the choice cannot
be fitted to them::

    python benchmarks/choose_surrogate.py --table ../shared/data/nb201/cifar10_12ep_200ep.csv \\
        --reward-column test-accuracy-12ep --evaluations 100,300 --seeds 100 \\
        --strategies 'qlearning:proposals=1;qlearning:proposals=8;...'

The last line is a JSON object ``{K: {spec: [mean reward, se, paired diff, paired se]}}``.
"""

from __future__ import annotations

import argparse
import json
import os
from concurrent.futures import ProcessPoolExecutor
from functools import partial

from nb201 import mean_se, one_run  # this folder's NB201 benchmark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", required=True)
    parser.add_argument("--reward-column", required=True, help="the search signal")
    parser.add_argument("--evaluations", default="100,300", help="budgets, comma-separated")
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--strategies", required=True, help="';'-separated nb201.py specs")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    args = parser.parse_args()
    columns = (args.table, args.reward_column, None, None)  # no judged column is loaded
    out: dict[int, dict[str, list[float]]] = {}
    with ProcessPoolExecutor(args.workers) as pool:
        for k in (int(text) for text in args.evaluations.split(",")):
            batch = max(1, k // 20)
            rewards = {}
            for spec in args.strategies.split(";"):
                run = partial(
                    one_run,
                    spec,
                    columns=columns,
                    evaluations=k,
                    batch=batch,
                    count_duplicates=False,
                )
                runs = pool.map(run, range(args.seeds), chunksize=max(1, args.seeds // 8))
                rewards[spec] = [r["reward"] for r in runs]
            reference = next(iter(rewards.values()))
            out[k] = {}
            for spec, values in rewards.items():
                mean, se = mean_se(values)
                diff, diff_se = mean_se([a - b for a, b in zip(values, reference, strict=True)])
                out[k][spec] = [mean, se, diff, diff_se]
                print(
                    f"K={k} {spec:>48}: reward {mean:.3f} +- {se:.3f}  "
                    f"minus first {diff:+.3f} +- {diff_se:.3f}",
                    flush=True,
                )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
