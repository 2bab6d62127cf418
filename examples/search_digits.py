"""A block search from Python on the built-in digits dataset, then its results.

    python examples/search_digits.py [RUN_DIR] [EVALUATIONS]

Re-running it continues the run (nothing finished is repeated); ``blockqnn show RUN_DIR``
and the other commands work on it as on a run the command line made.
"""

from __future__ import annotations

import sys
from pathlib import Path

import blockqnn


def main(run_dir: str = "runs/py-digits", evaluations: int = 40) -> None:
    if Path(run_dir, "run.db").exists():
        run = blockqnn.open_run(run_dir)
    else:
        run = blockqnn.create_run(
            run_dir, dataset="digits", evaluations=evaluations, epochs=1, val_fraction=0.3,
            repeats=1, widths=(16, 32, 64),
        )  # fmt: skip
    run.search(workers=2)
    print(run.summary())
    for candidate in run.best(3):
        print(f"#{candidate.id} {candidate.accuracy:.1f}% {candidate.arch}")
    print(run.to_dataframe()[["state", "accuracy", "flops", "params"]].describe())
    network = run.model("top1")  # untrained nn.Module of the best block
    print(f"top1 network: {sum(p.numel() for p in network.parameters())} parameters")


if __name__ == "__main__":
    main(*sys.argv[1:2], *map(int, sys.argv[2:3]))
