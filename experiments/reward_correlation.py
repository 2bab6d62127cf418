"""How well the early-stop signal ranks blocks by their accuracy after longer training, and
whether the redefined reward with FLOPs and density ranks them better (paper Fig. 6,
section 3.3).

Random blocks of the NSC space (the type-first sampler of the search's exploration) plus
the paper's two Fig. 2 blocks are each trained twice on the CPU proxy of CIFAR-10 the
searches use: with the search's early-stop recipe (its validation accuracy is exactly the
search signal) and, from a fresh initialisation, with a longer run of the same recipe
family (4x the epochs, the learning rate stepping x0.2 every quarter, no restarts); the
longer run's accuracy on the held-out *test* split is the "final accuracy". Kendall's tau-b
(scipy) between the final accuracy and each signal, and over a grid of mu, rho.

    python experiments/reward_correlation.py [--quick] [--out DIR] [--workers N]
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from typing import Any

import common
import torch
from scipy.stats import kendalltau

from blockqnn import blocks, nsc
from blockqnn.evaluation import Result
from blockqnn.execution import InlineExecutor, ProcessExecutor
from blockqnn.model import build
from blockqnn.space import NSCSpace, random_walk
from blockqnn.train.evaluator import TrainingEvaluator
from blockqnn.train.loop import Loop

MUS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)
RHOS = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0)


@dataclasses.dataclass(frozen=True)
class EarlyAndLong:
    """Evaluator: the search's early-stop training, then a longer one from a fresh
    initialisation; the result's ``extra`` holds ``long_val`` and ``long_test``."""

    early: TrainingEvaluator
    long_epochs: int

    def evaluate(self, arch: str) -> Result:
        start = time.perf_counter()
        early = self.early.evaluate(arch)
        val, test = self._long(nsc.parse(arch))
        extra = {**early.extra, "long_val": val, "long_test": test}
        return dataclasses.replace(early, extra=extra, cost_s=time.perf_counter() - start)

    def _long(self, block: nsc.Block) -> tuple[float, float]:
        """Validation and test accuracy after the longer training (no restart rule)."""
        steps = {"epochs": self.long_epochs, "lr_step": max(1, self.long_epochs // 4)}
        long = dataclasses.replace(self.early, recipe_overrides=steps)
        data = long.load_data()
        shape = {"num_classes": data.num_classes, "in_channels": data.channels}
        config = long.network_config(**shape, image_size=data.image_size)
        torch.manual_seed(long.seed)
        loop = Loop(build(block, config), data, long.early_stop_recipe(), self.long_epochs)
        loop.run()
        return loop.history[-1].val_accuracy, loop.accuracy("test")


def sample_blocks(count: int, seed: int = 0) -> dict[str, str]:
    """The two named blocks and ``count`` random, pairwise non-isomorphic blocks."""
    space, rng = NSCSpace(), random.Random(seed)
    chosen = {name: blocks.get(name) for name in blocks.names()}
    keys = {nsc.canonical_key(b) for b in chosen.values()}
    while len(chosen) < count + len(blocks.names()):
        block = space.architecture(random_walk(space, rng))
        if nsc.canonical_key(block) not in keys:
            keys.add(nsc.canonical_key(block))
            chosen[f"random-{len(chosen) - 1}"] = block
    return {name: nsc.format_block(b) for name, b in chosen.items()}


def evaluate_all(evaluator: EarlyAndLong, codes: dict[str, str], workers: int) -> list[dict]:
    """Train every block (``workers`` processes); one row per block that did not fail."""
    executor = InlineExecutor(evaluator) if workers == 1 else ProcessExecutor(evaluator, workers)
    names = list(codes)
    for cid, name in enumerate(names):
        executor.submit(cid, codes[name])
    rows, pending = [], len(names)
    try:
        while pending:
            for outcome in executor.wait(timeout=1.0):
                pending -= 1
                if outcome.result is None:
                    print(f"{names[outcome.cid]} failed: {outcome.error}")
                    continue
                rows.append(_row(names[outcome.cid], codes[names[outcome.cid]], outcome.result))
                print(_describe(rows[-1]), flush=True)
    finally:
        executor.close()
    return sorted(rows, key=lambda r: r["final"])


def _row(name: str, arch: str, result: Result) -> dict[str, Any]:
    return {
        "name": name,
        "arch": arch,
        "layers": len(nsc.body(nsc.parse(arch))),
        "early": result.accuracy,
        "final": result.extra["long_test"],
        "long_val": result.extra["long_val"],
        "gflops": result.metrics["flops"],
        "params": result.metrics["params"],
        "density": result.metrics["density"],
        "seconds": result.cost_s,
    }


def _describe(row: dict[str, Any]) -> str:
    return (
        f"{row['name']:>14}: {row['layers']:2d} layers  early {row['early']:5.1f}  "
        f"final {row['final']:5.1f}  MFLOPs {1e3 * row['gflops']:6.2f}  "
        f"density {row['density']:.2f}  {row['seconds']:5.1f} s"
    )


def signal(rows: list[dict], mu: float, rho: float) -> list[float]:
    """The redefined reward acc - mu ln(GFLOPs) - rho ln(density) of every row."""
    return [r["early"] - mu * math.log(r["gflops"]) - rho * math.log(r["density"]) for r in rows]


def tau(x: list[float], y: list[float]) -> dict[str, float]:
    """Kendall's tau-b and its two-sided p-value."""
    result = kendalltau(x, y)
    return {"tau": float(result.statistic), "p": float(result.pvalue)}


def correlations(rows: list[dict]) -> dict[str, Any]:
    """Kendall's tau of the final accuracy with each signal, and the mu-rho grid."""
    final = [r["final"] for r in rows]
    signals = {
        "early_stop_accuracy": signal(rows, 0, 0),
        "reward_mu1_rho8": signal(rows, 1, 8),
        "accuracy_minus_flops_term": signal(rows, 1, 0),
        "accuracy_minus_density_term": signal(rows, 0, 8),
        "minus_ln_flops_alone": [-math.log(r["gflops"]) for r in rows],
        "minus_ln_density_alone": [-math.log(r["density"]) for r in rows],
        "long_val_accuracy": [r["long_val"] for r in rows],
    }
    grid = [[tau(signal(rows, mu, rho), final)["tau"] for rho in RHOS] for mu in MUS]
    return {
        "vs_final": {name: tau(values, final) for name, values in signals.items()},
        "grid": {"mu": list(MUS), "rho": list(RHOS), "tau": grid},
    }


def plot(rows: list[dict], path) -> None:
    """Fig. 6 style: blocks sorted by final accuracy; accuracies and reward above, FLOPs
    and density below."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 6), dpi=100, layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(2, 1))
    x = range(1, len(rows) + 1)
    top.plot(x, [r["early"] for r in rows], "o-", color="C1", label="early-stop accuracy")
    top.plot(x, [r["final"] for r in rows], "o-", color="C3", label="final accuracy (test)")
    top.plot(x, signal(rows, 1, 8), "s-", color="C0", label="redefined reward (mu=1, rho=8)")
    top.set_ylabel("percent / reward")
    top.legend(fontsize=8)
    bottom.plot(x, [1e3 * r["gflops"] for r in rows], "^-", color="C2", label="MFLOPs")
    bottom.plot(x, [r["density"] for r in rows], "v-", color="C4", label="density")
    bottom.set_xlabel("block (sorted by final accuracy)")
    bottom.legend(fontsize=8)
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    fig.savefig(path, dpi=150)
    print(f"wrote {path}")


def main() -> None:
    args = common.parse_args(__doc__)
    count, long_epochs = (3, 2) if args.quick else (40, 12)
    options = common.proxy_evaluator(args.quick)
    early = TrainingEvaluator.from_dict({k: v for k, v in options.items() if k != "kind"})
    start = time.perf_counter()
    rows = evaluate_all(EarlyAndLong(early, long_epochs), sample_blocks(count), args.workers)
    result = {
        "machine": common.machine(),
        "scale": {"random_blocks": count, "named_blocks": 2, "long_epochs": long_epochs},
        "evaluator": options,
        "wall_s": time.perf_counter() - start,
        "correlations": correlations(rows),
        "blocks": rows,
    }
    for name, value in result["correlations"]["vs_final"].items():
        print(f"tau(final, {name}) = {value['tau']:+.3f} (p {value['p']:.3f})")
    plot(rows, args.out / "reward_correlation.png")
    common.write_json(args.out, "reward_correlation", result)


if __name__ == "__main__":
    main()
