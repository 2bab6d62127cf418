"""The same search with PCC codes (ReLU-Conv-BN as one code) vs separate ReLU / BN / Conv
codes (paper Fig. 9), on the CPU proxy of CIFAR-10, same seed and budget.

The separate space trains with bare convolutions (the evaluator's ``conv="plain"``): a
convolution is only a Conv, and ReLU and BN are layers the agent must choose itself.

    python experiments/pcc_vs_separate.py [--quick] [--out DIR] [--runs DIR] [--workers N]
"""

from __future__ import annotations

from typing import Any

import common

from blockqnn.config import SearchConfig

#: label -> (SearchConfig.components, TrainingEvaluator.conv)
SPACES = {"PCC": ("pcc", "pcc"), "separate ReLU/BN/Conv": ("separate", "plain")}


def run(args) -> dict[str, Any]:
    """Both code spaces with the paper's Q-learning through the search loop."""
    evaluations, batch = common.proxy_scale(args.quick)
    configs = {
        label: SearchConfig(
            components=components,
            evaluations=evaluations,
            batch=batch,
            seed=0,
            evaluator=common.proxy_evaluator(args.quick, conv=conv),
        )
        for label, (components, conv) in SPACES.items()
    }
    results = common.proxy_searches(configs, args, "pcc_vs_separate", "pcc_vs_separate")
    for label, r in results.items():
        print(common.summary_line(label, r["curves"]["accuracy"]), "(accuracy)")
    return {
        "machine": common.machine(),
        "scale": {"evaluations": evaluations, "batch": batch, "workers": args.workers},
        "evaluator": common.proxy_evaluator(args.quick),
        "arms": common.drop_archs(results),
    }


def main() -> None:
    args = common.parse_args(__doc__)
    common.write_json(args.out, "pcc_vs_separate", run(args))


if __name__ == "__main__":
    main()
