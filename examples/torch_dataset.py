"""A block search on a map-style ``torch.utils.data.Dataset`` of (image tensor, label).

    python examples/torch_dataset.py [RUN_DIR] [EVALUATIONS]

Images are ``[C, H, W]`` tensors (uint8, or floats in [0, 1], as torchvision's ``ToTensor``
gives them). The dataset is read once and written into the run directory.
"""

from __future__ import annotations

import sys

import torch
from sklearn.datasets import load_digits
from torch.utils.data import Dataset

import blockqnn


class Digits(Dataset):
    """scikit-learn's digits as float image tensors [1, 8, 8] in [0, 1]."""

    def __init__(self) -> None:
        digits = load_digits()
        self.images = torch.tensor(digits.images / 16, dtype=torch.float32).unsqueeze(1)
        self.labels = torch.tensor(digits.target)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], int(self.labels[i])


def main(run_dir: str = "runs/py-torch", evaluations: int = 20) -> None:
    run = blockqnn.create_run(
        run_dir, dataset=Digits(), evaluations=evaluations, epochs=1, val_fraction=0.3,
        repeats=1, widths=(16, 32, 64),
    )  # fmt: skip
    run.search(workers=2)
    frame = run.to_dataframe().sort_values("reward", ascending=False)
    print(frame[["state", "reward", "params", "arch"]].head().to_string())


if __name__ == "__main__":
    main(*sys.argv[1:2], *map(int, sys.argv[2:3]))
