"""A user's own images as arrays: converted to the dataset layout and kept as an ``.npz`` file.

The file (spec ``npz:PATH``) holds ``x``, images ``[N, H, W]`` or ``[N, H, W, C]`` (C 1 or 3,
channels last as numpy images are), uint8 or floats in [0, 1]; ``y``, integer labels
``0..K-1``; optionally ``classes``, K class names. It has no splits: the validation and test
images are held out from it as for any source without them. The Python API
(:func:`blockqnn.create_run`) writes one into the run directory from numpy arrays or a
``torch.utils.data.Dataset``, so workers load it by path like any other dataset.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from blockqnn.data.catalog import Catalog, array_catalog
from blockqnn.data.errors import DatasetError
from blockqnn.data.splits import TRAIN


def as_images(x: Any, where: str) -> np.ndarray:
    """``x`` ([N,H,W] or [N,H,W,C]; uint8, or floats in [0, 1]) as uint8 ``[N, H, W, C]``.

    Raises DatasetError naming ``where`` and the rule broken."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[3] not in (1, 3) or x.shape[0] == 0:
        raise DatasetError(
            f"{where}: x must be images [N,H,W] or [N,H,W,C] with C 1 or 3, got shape {x.shape}"
        )
    if x.shape[1] != x.shape[2]:
        raise DatasetError(f"{where}: images must be square, got {x.shape[1]}x{x.shape[2]}")
    if x.dtype == np.uint8:
        return x
    if not np.issubdtype(x.dtype, np.floating):
        raise DatasetError(f"{where}: x must be uint8 or floats in [0, 1], got {x.dtype}")
    if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise DatasetError(f"{where}: float images must hold values in [0, 1]")
    return np.rint(x * 255).astype(np.uint8)


def as_labels(y: Any, n: int, where: str) -> np.ndarray:
    """``y`` as int64 labels ``[n]`` (DatasetError naming ``where`` unless integers >= 0)."""
    y = np.asarray(y)
    if y.shape != (n,) or not (np.issubdtype(y.dtype, np.integer) or y.dtype == bool):
        raise DatasetError(f"{where}: y must be {n} integer labels, got {y.dtype} {y.shape}")
    if len(y) and y.min() < 0:
        raise DatasetError(f"{where}: labels must be 0 or more, got {y.min()}")
    return y.astype(np.int64)


def from_torch(dataset: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    """A map-style torch dataset of ``(image, label)``, images ``[C,H,W]`` or ``[H,W]``
    tensors (uint8, or floats in [0, 1]), as ``(x [N,H,W,C] uint8, y int64)``."""
    images, labels = [], []
    for i in range(len(dataset)):
        image, label = dataset[i]
        image = torch.as_tensor(image)
        if image.dim() == 3:
            image = image.permute(1, 2, 0)
        images.append(image.numpy())
        labels.append(int(label))
    if not images:
        raise DatasetError(f"{where}: the dataset is empty")
    x = np.stack(images)
    return as_images(x, where), as_labels(np.array(labels), len(x), where)


def write_npz(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    """Write images and labels (as :func:`as_images` / :func:`as_labels` give them) to
    ``path`` atomically (a temporary file, then ``os.replace``)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, x=x, y=y)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def npz_catalog(path: Path) -> Catalog:
    """The images of an ``.npz`` file (see the module's description), all for training."""
    where = f"npz:{path}"
    try:
        with np.load(path, allow_pickle=False) as f:
            if "x" not in f or "y" not in f:
                raise DatasetError(f"{where}: needs arrays 'x' and 'y', has {sorted(f.files)}")
            x = as_images(f["x"], where)
            y = as_labels(f["y"], len(x), where)
            names = [str(c) for c in f["classes"]] if "classes" in f else []
    except (OSError, ValueError) as exc:
        if isinstance(exc, DatasetError):
            raise
        raise DatasetError(f"{where}: not a readable .npz file ({exc})") from None
    classes = tuple(names) or tuple(str(i) for i in range(int(y.max()) + 1))
    if int(y.max()) >= len(classes):
        raise DatasetError(f"{where}: label {int(y.max())} but {len(classes)} class names")
    images = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    return array_catalog(images, y, np.full(len(y), TRAIN), classes)
