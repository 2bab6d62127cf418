"""Overhead of the latency measurement per candidate, on the README's CIFAR example.

Evaluates random blocks with the README's CIFAR settings (CIFAR-10 JPEG archive,
``--subset 5000 --image-size 16 -N 2 --widths 16,32,64``, proxy fidelity, one thread) and
reports, per candidate, the whole evaluation time, the time the latency measurement took
(``extra["latency_seconds"]``: batch 1 and batch 64, warm-up and timed runs) and their
ratio; the target is a ratio below 5%. Prints a table, then one JSON line.

    python benchmarks/latency_overhead.py [--archive ../shared/data/cifar10-jpg.tar.xz]
        [--candidates 4] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from pathlib import Path

from blockqnn.space import NSCSpace, random_walk
from blockqnn.train.evaluator import TrainingEvaluator

ROOT = Path(__file__).resolve().parents[1]
TARGET = 0.05


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", default=ROOT.parent / "shared/data/cifar10-jpg.tar.xz")
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    evaluator = TrainingEvaluator(
        dataset=f"imagefolder:{Path(args.archive).resolve()}",
        subset=5000,
        image_size=16,
        widths=(16, 32, 64),
        repeats=2,
        recipe="proxy",
    )
    evaluator.load_data()  # decoding is not part of any candidate's cost
    space, rng = NSCSpace(), random.Random(args.seed)
    rows = []
    print(f"{'train+eval s':>12} {'latency s':>10} {'share':>7} {'ms/img b1':>10} {'b64':>8}")
    for _ in range(args.candidates):
        arch = space.format(space.architecture(random_walk(space, rng)))
        result = evaluator.evaluate(arch)
        row = {
            "arch": arch,
            "cost_s": result.cost_s,
            "latency_s": result.extra["latency_seconds"],
            "share": result.extra["latency_seconds"] / result.cost_s,
            **{k: result.metrics[k] for k in ("latency_ms", "latency_batch_ms")},
        }
        rows.append(row)
        print(
            f"{row['cost_s']:>12.1f} {row['latency_s']:>10.3f} {row['share']:>7.2%}"
            f" {row['latency_ms']:>10.3f} {row['latency_batch_ms']:>8.3f}"
        )
    shares = [r["share"] for r in rows]
    summary = {"median_share": statistics.median(shares), "max_share": max(shares)}
    print(f"median share {summary['median_share']:.2%}, max {summary['max_share']:.2%}"
          f" (target < {TARGET:.0%})")  # fmt: skip
    print(json.dumps({"benchmark": "latency_overhead", **summary, "candidates": rows}))


if __name__ == "__main__":
    main()
