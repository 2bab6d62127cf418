"""A search evaluated on a Dask cluster (here a local one on 127.0.0.1, two workers).

    python examples/dask_cluster.py [RUN_DIR] [EVALUATIONS]

On a real cluster pass the scheduler's address (``executor="tcp://HOST:8786"``). Your own
arrays reach the workers as a file: ``data.npz`` in the run directory, which each worker
loads once by path (no task carries the data), so the run directory must be on storage
the workers share, at the same path.
"""

from __future__ import annotations

import sys

import numpy as np
from distributed import LocalCluster
from sklearn.datasets import load_digits

import blockqnn
from blockqnn.execution.dask_cluster import worker_config


def main(run_dir: str = "runs/py-dask", evaluations: int = 20) -> None:
    digits = load_digits()
    x, y = (digits.images * 16).clip(0, 255).astype(np.uint8), digits.target
    run = blockqnn.create_run(
        run_dir, dataset=(x, y), evaluations=evaluations, epochs=1, val_fraction=0.3,
        repeats=1, widths=(16, 32, 64),
    )  # fmt: skip
    with worker_config():  # the recommended worker environment (one thread each)
        cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0"
        )
    with cluster:
        run.search(executor=cluster.scheduler_address)
    print(run.summary())


if __name__ == "__main__":
    main(*sys.argv[1:2], *map(int, sys.argv[2:3]))
