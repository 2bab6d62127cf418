"""Q-learning vs random search with the same budget and seeds (paper Fig. 10, Appendix A).

Random search is the same pipeline with epsilon 1 throughout, so with the same seed both
propose exactly the same blocks in the exploration phase. (a) On the NAS-Bench-201 table
(valid accuracy as reward), many seeds; (b) on the CPU proxy of CIFAR-10 through the real
search loop with two worker processes, one seed.

    python experiments/q_vs_random.py [--quick] [--out DIR] [--runs DIR] [--workers N]
"""

from __future__ import annotations

import time
from typing import Any

import common

ARMS: list[common.Arm] = [
    ("Q-learning", "qlearning", {}),
    ("Q-learning alpha=0.5", "qlearning", {"alpha": 0.5}),
    ("random", "random", {}),
]


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
    """Every arm on the CPU proxy, same seed and budget, through the search loop."""
    evaluations, batch = common.proxy_scale(args.quick)
    evaluator = common.proxy_evaluator(args.quick)
    configs = common.arm_configs(ARMS, evaluations, batch, evaluator)
    results = common.proxy_searches(configs, args, "q_vs_random", "q_vs_random_cifar")
    first = results[ARMS[0][0]]["archs"]
    shared = {label: common.shared_prefix(first, r["archs"]) for label, r in results.items()}
    print(f"proposals shared with {ARMS[0][0]}: {shared}")
    return {
        "scale": {"evaluations": evaluations, "batch": batch, "workers": args.workers},
        "evaluator": evaluator,
        "arms": common.drop_archs(results),
        "shared_prefix": shared,
    }


def main() -> None:
    args = common.parse_args(__doc__)
    result = {"machine": common.machine(), "nb201": nb201_part(args), "cifar": cifar_part(args)}
    common.write_json(args.out, "q_vs_random", result)


if __name__ == "__main__":
    main()
