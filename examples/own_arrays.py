"""A block search on your own images given as numpy arrays.

    python examples/own_arrays.py [RUN_DIR] [EVALUATIONS]

``x`` holds images ``[N, H, W]`` or ``[N, H, W, C]`` (uint8, or floats in [0, 1]), ``y``
integer labels. They are written once into the run directory (``data.npz``); the workers
load that file, hold out the validation split (``val_fraction``) and keep it cached.
"""

from __future__ import annotations

import sys

import numpy as np
from sklearn.datasets import load_digits

import blockqnn


def main(run_dir: str = "runs/py-arrays", evaluations: int = 20) -> None:
    digits = load_digits()
    x = (digits.images / 16).astype(np.float32)  # [N, 8, 8] in [0, 1]
    y = digits.target
    run = blockqnn.create_run(
        run_dir, dataset=(x, y), evaluations=evaluations, epochs=1, val_fraction=0.3,
        repeats=1, widths=(16, 32, 64),
    )  # fmt: skip
    run.search(workers=2)
    best = run.best(1)[0]
    print(f"best #{best.id}: {best.accuracy:.1f}% validation accuracy, {best.arch}")


if __name__ == "__main__":
    main(*sys.argv[1:2], *map(int, sys.argv[2:3]))
