"""Q-learning with the shaped intermediate reward r_t = r_T / T vs without (r_t = 0),
same seeds and budget (paper Fig. 5, section 3.2).

The epsilon schedule and the random stream do not depend on the reward, so with the same
seed both agents share the exploration phase exactly. (a) On the NAS-Bench-201 table with
the paper's alpha 0.01 and with alpha 0.5, many seeds; (b) on the CPU proxy of CIFAR-10
(alpha 0.5), one seed, with the mean block length per iteration (the paper says agents
without the shaped reward prefer small blocks early).

    python experiments/shaped_reward.py [--quick] [--out DIR] [--runs DIR] [--workers N]
"""

from __future__ import annotations

import time
from typing import Any

import common

TABLE_ARMS: list[common.Arm] = [
    ("shaped", "qlearning", {}),
    ("unshaped", "qlearning", {"shaped": False}),
    ("shaped alpha=0.5", "qlearning", {"alpha": 0.5}),
    ("unshaped alpha=0.5", "qlearning", {"alpha": 0.5, "shaped": False}),
]
PROXY_ARMS: list[common.Arm] = [
    ("shaped alpha=0.5", "qlearning", {"alpha": 0.5}),
    ("unshaped alpha=0.5", "qlearning", {"alpha": 0.5, "shaped": False}),
]


def nb201_part(args) -> dict[str, Any]:
    """Both reward variants at both learning rates on the NB201 table."""
    seeds, evaluations, batch = (3, 100, 10) if args.quick else (100, 1000, 50)
    start = time.perf_counter()
    arms = common.table_arms(TABLE_ARMS, seeds, evaluations, batch)
    for alpha, (shaped, unshaped) in {"0.01": TABLE_ARMS[:2], "0.5": TABLE_ARMS[2:]}.items():
        curves = {label: arms[label]["curve"] for label, _, _ in (shaped, unshaped)}
        common.plot(curves, batch, args.out / f"shaped_reward_nb201_alpha{alpha}.png")
    print(f"NB201 table: {seeds} seeds x {evaluations} evaluations, batch {batch}")
    for label, arm in arms.items():
        final = arm["final"]
        print(
            common.summary_line(label, arm["curve"]),
            f"exploitation mean {final['exploit_mean']['mean']:.2f}",
            f"test of best {final['test_of_best']['mean']:.2f}",
        )
    scale = {"seeds": seeds, "evaluations": evaluations, "batch": batch}
    return {"scale": scale, "arms": arms, "wall_s": time.perf_counter() - start}


def proxy_part(args) -> dict[str, Any]:
    """Both reward variants on the CPU proxy through the search loop."""
    evaluations, batch = common.proxy_scale(args.quick)
    evaluator = common.proxy_evaluator(args.quick)
    configs = common.arm_configs(PROXY_ARMS, evaluations, batch, evaluator)
    results = common.proxy_searches(configs, args, "shaped_reward", "shaped_reward_cifar")
    plot_layers(results, batch, args.out / "shaped_reward_cifar_layers.png")
    for label, r in results.items():
        print(f"{label:>24}: mean layers per iteration", " ".join(f"{n:.1f}" for n in r["layers"]))
    return {
        "scale": {"evaluations": evaluations, "batch": batch, "workers": args.workers},
        "evaluator": evaluator,
        "arms": common.drop_archs(results),
    }


def plot_layers(results: dict[str, Any], batch: int, path) -> None:
    """Mean block length (layers, terminal excluded) per iteration of each search."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.5), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    for label, r in results.items():
        ax.plot(range(1, len(r["layers"]) + 1), r["layers"], marker="o", label=label)
    ax.set(xlabel=f"iteration (batch of {batch})", ylabel="mean layers per block")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=150)
    print(f"wrote {path}")


def main() -> None:
    args = common.parse_args(__doc__)
    result = {"machine": common.machine(), "nb201": nb201_part(args), "cifar": proxy_part(args)}
    common.write_json(args.out, "shaped_reward", result)


if __name__ == "__main__":
    main()
