"""The cost of a user's training function against the built-in early stop, and of a user's
data reaching the workers.

1. The same blocks evaluated side by side, alternating which goes first, by the built-in
   :class:`TrainingEvaluator` and by the same evaluator with ``trainer=`` a function that
   does the same work (the proxy recipe's :class:`Loop`, same seed, no restarts): the
   ratio of their wall times (target: within 3%), in total and as the median of the
   ratios of each block's adjacent pair (robust to bursts of other load), the same for the
   CPU time of the (one-thread) process, and whether their accuracies agree (they should
   be equal: same network, seed and loop).
2. Own data: the bytes each evaluation task carries (the pickled evaluator: a file path,
   never the images) and the time a worker takes to load an ``npz:`` dataset once
   (first load: decode, split and cache; later processes: the cache).

    python benchmarks/custom_eval_overhead.py [--dataset digits] [--candidates 6]
        [--rounds 3] [--epochs 2] [--npz-images 20000]
"""

from __future__ import annotations

import argparse
import pickle
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from blockqnn.data.arrays import write_npz
from blockqnn.space import NSCSpace, random_walk
from blockqnn.train import Budget, Loop
from blockqnn.train.evaluator import TrainingEvaluator
from blockqnn.train.recipes import early_stop_recipe

#: The recipe both arms train with: the proxy early stop without the restart rule, so the
#: two do exactly the same work.
OVERRIDES = {"max_restarts": 0}


def train(network: torch.nn.Module, budget: Budget) -> float:
    """The custom arm: the built-in loop with the proxy recipe, as a user's function."""
    recipe = early_stop_recipe("proxy", {**OVERRIDES, "epochs": budget.epochs})
    loop = Loop(network, budget.data, recipe, budget.epochs, seed=budget.seed, device="cpu")
    loop.run()
    return loop.history[-1].val_accuracy


def random_blocks(n: int, seed: int) -> list[str]:
    space, rng = NSCSpace(), random.Random(seed)
    return [space.format(space.architecture(random_walk(space, rng))) for _ in range(n)]


def timed(evaluator: TrainingEvaluator, code: str) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds of this (one-thread) process, and the accuracy."""
    start, cpu = time.perf_counter(), time.process_time()
    result = evaluator.evaluate(code)
    return time.perf_counter() - start, time.process_time() - cpu, result.accuracy


def compare(args: argparse.Namespace) -> None:
    builtin = TrainingEvaluator(
        dataset=args.dataset, widths=(16, 32, 64), repeats=1, recipe="proxy",
        recipe_overrides={**OVERRIDES, "epochs": args.epochs}, val_fraction=0.3,
    )  # fmt: skip
    custom = TrainingEvaluator(**{**builtin.to_dict(), "trainer": "custom_eval_overhead:train"})
    print(f"data: {builtin.load_data().describe()}; recipe {builtin.early_stop_recipe()}")
    codes = random_blocks(args.candidates, seed=0)
    timed(builtin, codes[0]), timed(custom, codes[0])  # warm-up: imports, caches
    seconds: dict[str, list[float]] = {"built-in": [], "custom": []}
    cpu: dict[str, list[float]] = {"built-in": [], "custom": []}
    agree = 0
    for round_ in range(args.rounds):
        for i, code in enumerate(codes):
            arms = [("built-in", builtin), ("custom", custom)]
            if (round_ + i) % 2:
                arms.reverse()
            accuracy = {}
            for name, evaluator in arms:
                s, c, accuracy[name] = timed(evaluator, code)
                seconds[name].append(s)
                cpu[name].append(c)
            agree += accuracy["built-in"] == accuracy["custom"]
    n = len(seconds["custom"])
    for name, values in seconds.items():
        print(f"{name:9s}: {sum(values) / n:.3f} s per candidate, {sum(cpu[name]) / n:.3f} s CPU")
    for what, times in (("wall", seconds), ("CPU", cpu)):
        total = sum(times["custom"]) / sum(times["built-in"])
        pairs = zip(times["custom"], times["built-in"], strict=True)
        paired = statistics.median(c / b for c, b in pairs)
        print(
            f"custom / built-in {what} time: {total:.4f} in total, {paired:.4f} median of the "
            "per-block pairs (target <= 1.03)"
        )
    print(f"identical accuracies: {agree} of {n} evaluations")


def load_once(spec: str, cache: str) -> float:
    """Seconds a fresh process takes to load ``spec`` (what a worker does once)."""
    code = (
        "import time; from blockqnn.data import load_dataset; t = time.perf_counter(); "
        f"load_dataset({spec!r}, val_fraction=0.1, cache_dir={cache!r}); "
        "print(time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def own_data(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, (args.npz_images, 32, 32, 3), dtype=np.uint8)
        y = rng.integers(0, 10, args.npz_images)
        path = Path(tmp) / "data.npz"
        write_npz(path, x, y)
        spec = f"npz:{path}"
        evaluator = TrainingEvaluator(dataset=spec)
        print(
            f"own data: {args.npz_images} images 32x32x3 ({path.stat().st_size / 1e6:.0f} MB "
            f"file); each task carries the pickled evaluator: {len(pickle.dumps(evaluator))} "
            "bytes"
        )
        first, cached = load_once(spec, tmp), load_once(spec, tmp)
        print(f"a worker's one load: {first:.2f} s the first time (decode, split, cache), "
              f"{cached:.2f} s from the cache (in a fresh process, after its imports)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--candidates", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--npz-images", type=int, default=20000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    compare(args)
    own_data(args)


if __name__ == "__main__":
    main()
