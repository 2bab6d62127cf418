"""What the default agent's model of the reward costs per proposal on the NSC block space.

Asks the default Q-learning agent (each proposal the best of 128 policy walks by the model)
and the plain agent (``proposals=1``) for ``--proposals`` blocks of the paper's NSC space,
telling each a pseudo-reward at once (a hash of its codes: no training), and prints the
median and the largest time per ask (the model's fit included) by stretch of the search,
to set beside a candidate's training (tens of seconds on the README's CIFAR example)::

    python benchmarks/proposal_cost.py --proposals 200

The last line is a JSON object ``{arm: {"median_ms": ..., "max_ms": ...}}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import zlib

from blockqnn.space import NSCSpace
from blockqnn.strategies import QLearningStrategy

ARMS = {"default": {}, "plain (proposals=1)": {"proposals": 1}}


def times(options: dict, proposals: int, seed: int) -> list[float]:
    """Seconds per ask over one search of ``proposals`` asks."""
    space = NSCSpace()
    agent = QLearningStrategy(
        space, seed=seed, budget=proposals, batch=max(1, proposals // 20), **options
    )
    out = []
    for _ in range(proposals):
        start = time.perf_counter()
        arch = agent.ask()
        out.append(time.perf_counter() - start)
        agent.tell(arch, zlib.crc32(space.format(arch).encode()) % 1000 / 10)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proposals", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    summary = {}
    for arm, options in ARMS.items():
        spent = times(options, args.proposals, args.seed)
        quarter = max(1, len(spent) // 4)
        stretches = [spent[i : i + quarter] for i in range(0, len(spent), quarter)]
        shown = ", ".join(f"{1e3 * statistics.median(s):.1f}" for s in stretches)
        summary[arm] = {
            "median_ms": 1e3 * statistics.median(spent),
            "max_ms": 1e3 * max(spent),
        }
        print(
            f"{arm:>20}: median {summary[arm]['median_ms']:.1f} ms/proposal, "
            f"max {summary[arm]['max_ms']:.1f} ms; medians by quarter of the search: {shown}"
        )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
