"""Q-learning vs random search with the same budget and seeds (paper Fig. 10, Appendix A).

Random search is the same pipeline with epsilon 1 throughout. Arms: the default agent,
the paper's agent (``preset=paper``) and random search; every arm uses the search loop's
accounting (a re-proposal is answered from the stored result and does not count). (a) On
the NAS-Bench-201 table (valid accuracy as reward), many seeds; (b) on the CPU proxy of
CIFAR-10 (a validation split of 1,000 images) through the real search loop with two
worker processes, several seeds per arm.

    python experiments/q_vs_random.py [--quick] [--out DIR] [--runs DIR] [--workers N]
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import common

ARMS: list[common.Arm] = [
    ("Q-learning", "qlearning", {}),
    ("Q-learning (paper)", "qlearning", {"preset": "paper"}),
    ("random", "random", {}),
]
#: The proxy for this comparison: 5,000 CIFAR-10 images, a fifth of them for validation,
#: two epochs per candidate.
PROXY = {"subset": 5000, "val_fraction": 0.2, "recipe_overrides": {"epochs": 2}}
SEEDS = 3


def nb201_part(args) -> dict[str, Any]:
    """Every arm on the NB201 table, averaged over seeds."""
    seeds, evaluations, batch = (3, 100, 10) if args.quick else (100, 1000, 50)
    start = time.perf_counter()
    arms = common.table_arms(ARMS, seeds, evaluations, batch)
    common.plot({k: a["curve"] for k, a in arms.items()}, batch, args.out / "q_vs_random_nb201.png")
    print(f"NB201 table: {seeds} seeds x {evaluations} evaluations, batch {batch}")
    for label, arm in arms.items():
        print(common.summary_line(label, arm["curve"]), f"test of best {_test(arm):.2f}")
    scale = {"seeds": seeds, "evaluations": evaluations, "batch": batch}
    return {"scale": scale, "arms": arms, "wall_s": time.perf_counter() - start}


def _test(arm: dict[str, Any]) -> float:
    return arm["final"]["test_of_best"]["mean"]


def cifar_part(args) -> dict[str, Any]:
    """Every arm on the CPU proxy, the same seeds and budget, through the search loop."""
    evaluations, batch = common.proxy_scale(args.quick) if args.quick else (48, 4)
    evaluator = common.proxy_evaluator(args.quick, **({} if args.quick else PROXY))
    seeds = 1 if args.quick else SEEDS
    arms = [label for label, _, _ in ARMS if label != "Q-learning (paper)"]
    per_seed: dict[str, list[dict[str, Any]]] = {label: [] for label in arms}
    for seed in range(seeds):
        configs = common.arm_configs(ARMS, evaluations, batch, evaluator, seed=seed)
        configs = {label: configs[label] for label in arms}
        stem = f"q_vs_random_cifar_seed{seed}"
        results = common.proxy_searches(configs, args, f"q_vs_random-s{seed}", stem)
        for label in arms:
            per_seed[label].append(common.drop_archs(results)[label])
    summary = {label: _cifar_summary(runs) for label, runs in per_seed.items()}
    for label, figures in summary.items():
        print(f"{label:>12}: " + "  ".join(f"{k} {v['mean']:.2f} +- {v['se']:.2f}"
                                           for k, v in figures.items()))  # fmt: skip
    return {
        "scale": {
            "evaluations": evaluations,
            "batch": batch,
            "workers": args.workers,
            "seeds": seeds,
        },
        "evaluator": evaluator,
        "summary": summary,
        "runs": per_seed,
    }


def _cifar_summary(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean +- standard error over seeds of the best reward, the mean reward of the
    exploration iterations (epsilon 1) and of the last quarter of the iterations, and
    the iteration the best candidate was found in."""
    figures: dict[str, list[float]] = {"best": [], "explore_mean": [], "late_mean": []}
    for run in runs:
        curve = run["curves"]["reward"]
        explore = [m for m, e in zip(curve["mean"], curve["epsilon"], strict=True) if e == 1.0]
        late = curve["mean"][-max(1, len(curve["mean"]) // 4) :]
        figures["best"].append(curve["top1"][-1])
        figures["explore_mean"].append(statistics.fmean(explore or curve["mean"][:1]))
        figures["late_mean"].append(statistics.fmean(late))
    return {key: _mean_se(values) for key, values in figures.items()}


def _mean_se(values: list[float]) -> dict[str, float]:
    se = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "se": se, "n": len(values)}


def main() -> None:
    args = common.parse_args(__doc__)
    result = {"machine": common.machine(), "nb201": nb201_part(args), "cifar": cifar_part(args)}
    common.write_json(args.out, "q_vs_random", result)


if __name__ == "__main__":
    main()
