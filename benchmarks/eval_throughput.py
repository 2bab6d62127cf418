"""Early-stop evaluation throughput on the shared CIFAR-10 archive (proxy preset).

1. Candidates per hour with 1 and 2 worker processes: the same random blocks evaluated by
   a :class:`ProcessExecutor` of each size, side by side, alternating rounds; prints the
   scaling ratio (target >= 1.8).
2. The evaluator's training images/s against a bare training loop over the same network
   and data (Adam, same batch, channels_last, one thread), alternating; prints the ratio
   (target >= 0.95). The evaluator's figure is its training images over the whole
   ``evaluate`` call (build, profile, validation included).

    python benchmarks/eval_throughput.py [--archive ../shared/data/cifar10-jpg.tar.xz]
        [--subset 2000] [--image-size 16] [--candidates 6] [--rounds 2]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from blockqnn import blocks
from blockqnn.execution import ProcessExecutor
from blockqnn.model import build
from blockqnn.space import NSCSpace, random_walk
from blockqnn.train.evaluator import TrainingEvaluator

ROOT = Path(__file__).resolve().parents[1]


def evaluator_for(args: argparse.Namespace) -> TrainingEvaluator:
    return TrainingEvaluator(
        dataset=f"imagefolder:{Path(args.archive).resolve()}",
        subset=args.subset,
        image_size=args.image_size,
        widths=(16, 32, 64),
        repeats=2,
        recipe="proxy",
    )


def random_blocks(n: int, seed: int) -> list[str]:
    space, rng = NSCSpace(), random.Random(seed)
    return [space.format(space.architecture(random_walk(space, rng))) for _ in range(n)]


def per_hour(evaluator: TrainingEvaluator, codes: list[str], workers: int) -> float:
    """Candidates per hour evaluating ``codes`` on ``workers`` processes (after warm-up)."""
    with ProcessExecutor(evaluator, workers) as pool:
        for cid in range(workers):  # warm-up: start workers, load the cached dataset
            pool.submit(-1 - cid, codes[0])
        _drain(pool, workers)
        start = time.perf_counter()
        for cid, code in enumerate(codes):
            pool.submit(cid, code)
        _drain(pool, len(codes))
        return 3600 * len(codes) / (time.perf_counter() - start)


def _drain(pool: ProcessExecutor, n: int) -> None:
    done = 0
    while done < n:
        for outcome in pool.wait(timeout=5):
            assert outcome.result is not None, outcome.error
            done += 1


def evaluator_rate(evaluator: TrainingEvaluator, code: str) -> float:
    """Training images per second of wall time over a whole ``evaluate`` call."""
    data = evaluator.load_data()
    start = time.perf_counter()
    result = evaluator.evaluate(code)
    seconds = time.perf_counter() - start
    return result.extra["epochs"] * len(data.y_train) / seconds


def bare_rate(evaluator: TrainingEvaluator, code: str) -> float:
    """Training images per second of a minimal Adam loop over the same network and data."""
    data, recipe = evaluator.load_data(), evaluator.early_stop_recipe()
    shape = {"num_classes": data.num_classes, "in_channels": data.channels}
    net = build(code, evaluator.network_config(image_size=data.image_size, **shape))
    net = net.to(memory_format=torch.channels_last)
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    x = ((data.x_train.float() / 255 - mean) / std).contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=recipe.lr)
    start = time.perf_counter()
    for _ in range(recipe.epochs):
        for index in torch.randperm(len(x)).split(recipe.batch_size):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(x[index]), data.y_train[index]).backward()
            opt.step()
    return recipe.epochs * len(x) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", default=str(ROOT.parent / "shared/data/cifar10-jpg.tar.xz"))
    parser.add_argument("--subset", type=int, default=2000)
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument("--candidates", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    evaluator = evaluator_for(args)
    print(f"data: {evaluator.load_data().describe()}; proxy recipe {evaluator.early_stop_recipe()}")
    codes = random_blocks(args.candidates, seed=0)
    rates: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(args.rounds):
        for workers in (1, 2):
            rates[workers].append(per_hour(evaluator, codes, workers))
    one, two = (statistics.median(rates[w]) for w in (1, 2))
    print(f"1 worker:  {one:.0f} candidates/hour; 2 workers: {two:.0f} candidates/hour")
    print(f"scaling 2 workers / 1 worker: {two / one:.2f} (target >= 1.8)")
    code = blocks.KNOWN["shortcut"]
    ev, bare = [], []
    for _ in range(args.rounds):
        ev.append(evaluator_rate(evaluator, code))
        bare.append(bare_rate(evaluator, code))
    ev_med, bare_med = statistics.median(ev), statistics.median(bare)
    print(f"evaluator: {ev_med:.0f} img/s; bare loop: {bare_med:.0f} img/s (shortcut block)")
    print(f"ratio evaluator / bare loop: {ev_med / bare_med:.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
