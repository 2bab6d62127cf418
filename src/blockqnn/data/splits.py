"""Seeded, stratified choice of the train / validation / test indices.

Everything here works on label arrays only, so a source can choose which images to decode
before decoding any. The central tool is :func:`stratified_order`: a seeded permutation in
which every prefix holds each class in (almost) its overall proportion, so "hold out k" and
"keep the first k" are both stratified.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from blockqnn.data.errors import DatasetError

#: Split tags of catalogue items.
TRAIN, VAL, TEST = 0, 1, 2

#: Fraction of the images held out as the test set when a source has no test split.
TEST_FRACTION = 0.2

#: Seed of everything that concerns the test set, so the test set never depends on ``seed``.
TEST_SEED = 0


@dataclass(frozen=True)
class SplitPlan:
    """Sorted item indices of each split; the three are disjoint."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def stratified_order(labels: np.ndarray, seed: int) -> np.ndarray:
    """A permutation of ``range(len(labels))`` whose every prefix is class-balanced.

    Each item gets the key ``(rank within its class + 0.5) / class size`` for a random rank;
    sorting by key (random tie-break) interleaves the classes in proportion.
    """
    n = len(labels)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    lab = np.asarray(labels, dtype=np.int64)[perm]
    counts = np.bincount(lab)
    by_class = np.argsort(lab, kind="stable")
    rank = np.empty(n, dtype=np.float64)
    rank[by_class] = np.arange(n) - (np.cumsum(counts) - counts)[lab[by_class]]
    key = (rank + 0.5) / counts[lab]
    return perm[np.lexsort((rng.random(n), key))]


def take(indices: np.ndarray, labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` of ``indices``, stratified by ``labels[indices]`` and seeded."""
    return indices[stratified_order(labels[indices], seed)[:n]]


def hold_out(
    indices: np.ndarray, labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``indices`` into (kept, held) with ``round(fraction * len)`` held, stratified."""
    order = indices[stratified_order(labels[indices], seed)]
    k = round(fraction * len(indices))
    return order[k:], order[:k]


def plan_splits(
    labels: np.ndarray, tags: np.ndarray, *, val_fraction: float, subset: int | None, seed: int
) -> SplitPlan:
    """Choose the items of each split.

    Items tagged TEST form the test set; with none, ``TEST_FRACTION`` of all items is held
    out with ``TEST_SEED``. Items tagged VAL form the validation set; with none,
    ``val_fraction`` of the training items is held out with ``seed``. ``subset=N`` keeps N
    training items (stratified, seeded) and shrinks validation and test by the same factor
    ``N / len(train)``, each to at least one item per class (or all it has).
    """
    labels = np.asarray(labels, dtype=np.int64)
    test = np.flatnonzero(tags == TEST)
    train = np.flatnonzero(tags == TRAIN)
    if len(test) == 0:
        train, test = hold_out(train, labels, TEST_FRACTION, TEST_SEED)
    val = np.flatnonzero(tags == VAL)
    if len(val) == 0:
        train, val = hold_out(train, labels, val_fraction, seed)
    if subset is not None:
        train, val, test = _shrink(labels, train, val, test, subset, seed)
    return SplitPlan(np.sort(train), np.sort(val), np.sort(test))


def _shrink(
    labels: np.ndarray, train: np.ndarray, val: np.ndarray, test: np.ndarray, n: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not 0 < n <= len(train):
        raise DatasetError(f"subset={n} must be between 1 and the {len(train)} training images")
    factor = n / len(train)
    floor = len(np.unique(labels))

    def size(split: np.ndarray) -> int:
        return min(len(split), max(round(factor * len(split)), floor))

    return (
        take(train, labels, n, seed),
        take(val, labels, size(val), seed),
        take(test, labels, size(test), TEST_SEED),
    )
