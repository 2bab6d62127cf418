"""Reading split and class from image paths: ``<split>/<class>/<image>`` or ``<class>/<image>``.

A single top-level folder above either layout (``cifar10jpg/train/cat/0001.jpg``) is
tolerated. Split folders are named train|training, val|valid|validation, test|testing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np

from blockqnn.data.errors import DatasetError
from blockqnn.data.splits import TEST, TRAIN, VAL

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm"}
)
SPLIT_NAMES = {
    "train": TRAIN, "training": TRAIN,
    "val": VAL, "valid": VAL, "validation": VAL,
    "test": TEST, "testing": TEST,
}  # fmt: skip


@dataclass(frozen=True)
class FolderLayout:
    """Image ``names`` (as given) with their int64 ``labels``, split ``tags`` and ``classes``."""

    names: tuple[str, ...]
    labels: np.ndarray
    tags: np.ndarray
    classes: tuple[str, ...]


def is_image(name: str) -> bool:
    """An image file by suffix, outside hidden folders (``.git``, ``__MACOSX``)."""
    path = PurePosixPath(name)
    hidden = any(part.startswith((".", "__MACOSX")) for part in path.parts)
    return path.suffix.lower() in IMAGE_SUFFIXES and not hidden


def parse_layout(names: Sequence[str], where: str) -> FolderLayout:
    """Label and split every image among ``names``; DatasetError naming ``where`` if unclear."""
    images = sorted(n for n in names if is_image(n))
    if not images:
        raise DatasetError(f"{where}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found")
    parts = [PurePosixPath(n).parts for n in images]
    skip = _common_folders(parts)
    rel = [p[skip:] for p in parts]
    if all(len(r) == 3 and r[0].lower() in SPLIT_NAMES for r in rel):
        tags = np.array([SPLIT_NAMES[r[0].lower()] for r in rel])
        class_names = [r[1] for r in rel]
    elif all(len(r) == 2 for r in rel):
        tags = np.full(len(rel), TRAIN)
        class_names = [r[0] for r in rel]
    else:
        raise _layout_error(where, images, rel)
    if not (tags == TRAIN).any():
        raise DatasetError(f"{where}: no training images (a 'train' folder is required)")
    classes = tuple(sorted(set(class_names)))
    index = {c: i for i, c in enumerate(classes)}
    labels = np.array([index[c] for c in class_names], dtype=np.int64)
    return FolderLayout(tuple(images), labels, tags, classes)


def _common_folders(parts: list[tuple[str, ...]]) -> int:
    """How many leading folders all paths share and the layout does not use."""
    k = 0
    while (
        all(len(p) > k + 2 for p in parts)
        and len({p[k] for p in parts}) == 1
        and parts[0][k].lower() not in SPLIT_NAMES
    ):
        k += 1
    return k


def _layout_error(where: str, images: list[str], rel: list[tuple[str, ...]]) -> DatasetError:
    """An error naming the first image that does not fit the most common depth."""
    depths = [len(r) for r in rel]
    depth = max(set(depths), key=depths.count)
    odd = next(
        (n for n, r in zip(images, rel, strict=True) if len(r) != depth or _bad_split(r)),
        images[0],
    )
    return DatasetError(
        f"{where}: expected <split>/<class>/<image> or <class>/<image>, found {odd!r}"
    )


def _bad_split(rel: tuple[str, ...]) -> bool:
    return len(rel) == 3 and rel[0].lower() not in SPLIT_NAMES
