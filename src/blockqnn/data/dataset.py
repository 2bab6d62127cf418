"""The in-memory dataset record and pixel normalisation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from blockqnn.data.digits import PIXEL_MAX as DIGITS_PIXEL_MAX
from blockqnn.data.errors import DatasetError

_SPLITS = ("train", "val", "test")


@dataclass(frozen=True, eq=False)
class Dataset:
    """Images as uint8 tensors ``[N, C, H, W]`` with int64 labels, in three disjoint splits.

    The validation split is held out from the training data, never from the test set.
    ``mean`` and ``std`` are per-channel statistics of ``x_train`` on the [0, 1] scale; they
    are computed from ``x_train`` when not given. Construction checks dtypes and shapes.
    Tensors are left out of ``repr`` and equality is identity (tensors have no truth value).
    """

    name: str
    x_train: torch.Tensor = field(repr=False)
    y_train: torch.Tensor = field(repr=False)
    x_val: torch.Tensor = field(repr=False)
    y_val: torch.Tensor = field(repr=False)
    x_test: torch.Tensor = field(repr=False)
    y_test: torch.Tensor = field(repr=False)
    classes: tuple[str, ...]
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        for split in _SPLITS:
            _check_split(self, split)
        if not self.mean or not self.std:
            mean, std = channel_stats(self.x_train)
            object.__setattr__(self, "mean", mean)
            object.__setattr__(self, "std", std)
        object.__setattr__(self, "classes", tuple(self.classes))

    @property
    def pixel_max(self) -> float:
        """The brightest value of the images in their source's own scale (255, except 16
        for scikit-learn's digits): a network trained on this dataset expects its source's
        images as ``(x / pixel_max - mean) / std``."""
        return DIGITS_PIXEL_MAX if self.name == "digits" else 255.0

    @property
    def num_classes(self) -> int:
        """Number of classes (labels are in ``range(num_classes)``)."""
        return len(self.classes)

    @property
    def channels(self) -> int:
        """Image channels: 1 (grey) or 3 (RGB)."""
        return int(self.x_train.shape[1])

    @property
    def image_size(self) -> int:
        """Image height in pixels."""
        return int(self.x_train.shape[2])

    def describe(self) -> str:
        """One line: name, split sizes, image shape and class count."""
        shape = "x".join(str(d) for d in self.x_train.shape[1:])
        return (
            f"{self.name}: {len(self.y_train)} train / {len(self.y_val)} val / "
            f"{len(self.y_test)} test, {shape}, {self.num_classes} classes"
        )

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (uint8) as float32, standardised with this dataset's training statistics."""
        return normalise(x, self.mean, self.std)


def _check_split(data: Dataset, split: str) -> None:
    x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
    if x.dtype != torch.uint8 or x.dim() != 4:
        raise DatasetError(
            f"{data.name}: x_{split} must be uint8 [N,C,H,W], got {x.dtype} {tuple(x.shape)}"
        )
    if y.dtype != torch.int64 or y.shape != (x.shape[0],):
        raise DatasetError(
            f"{data.name}: y_{split} must be int64 [{x.shape[0]}], got {y.dtype} {tuple(y.shape)}"
        )
    if x.shape[1:] != data.x_train.shape[1:]:
        raise DatasetError(
            f"{data.name}: x_{split} images {tuple(x.shape[1:])} differ from x_train's"
        )
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= len(data.classes)):
        raise DatasetError(f"{data.name}: y_{split} has labels outside 0..{len(data.classes) - 1}")


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and std of uint8 images ``x`` on the [0, 1] scale.

    Uses a 256-bin histogram per channel, so no float copy of ``x`` is made. An empty
    ``x`` gives mean 0 and std 1; a constant channel gets std 1 (never divide by zero).
    """
    values = torch.arange(256, dtype=torch.float64) / 255
    means, stds = [], []
    for c in range(x.shape[1]):
        counts = torch.bincount(x[:, c].reshape(-1).long(), minlength=256).double()
        total = max(float(counts.sum()), 1.0)
        mean = float((counts * values).sum()) / total
        var = float((counts * (values - mean) ** 2).sum()) / total
        means.append(mean)
        stds.append(var**0.5 if var > 0 else 1.0)
    return tuple(means), tuple(stds)


def normalise(
    x: torch.Tensor, mean: Sequence[float] | None = None, std: Sequence[float] | None = None
) -> torch.Tensor:
    """uint8 images ``[N, C, H, W]`` as float32 in [0, 1], then standardised per channel.

    Without ``mean``/``std`` the result stays in [0, 1]. Pass a dataset's ``mean`` and
    ``std`` (training-set statistics) to get zero-mean, unit-variance channels.
    """
    out = x.to(torch.float32) / 255
    if mean is None or std is None:
        return out
    shape = (1, -1, 1, 1)
    m = torch.tensor(mean, dtype=torch.float32).view(shape)
    s = torch.tensor(std, dtype=torch.float32).view(shape)
    return out.sub_(m).div_(s)
