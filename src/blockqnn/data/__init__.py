"""Datasets as in-memory uint8 tensors ``[N, C, H, W]`` with int64 labels.

``load_dataset(spec)`` gives a :class:`Dataset` with train / validation / test splits (the
validation split is held out from the training data). Sources: scikit-learn's bundled
``digits`` (the offline default), the official CIFAR-10/100 python archives, MNIST idx
files, and image folders (a directory or a tar archive). Decoded tensors are cached on disk.
"""

from __future__ import annotations

from blockqnn.data.dataset import Dataset, channel_stats, normalise
from blockqnn.data.errors import DatasetError
from blockqnn.data.loader import load_dataset, parse_spec

__all__ = ["Dataset", "DatasetError", "channel_stats", "load_dataset", "normalise", "parse_spec"]
