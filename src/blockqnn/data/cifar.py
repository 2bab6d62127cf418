"""CIFAR-10 and CIFAR-100 from the official "python version" archives.

A source is the ``.tar.gz`` (read in memory, never extracted) or a folder holding the
extracted ``cifar-10-batches-py`` / ``cifar-100-python`` files (or that folder itself).
Pickles are read with the restricted unpickler of :mod:`blockqnn.data.unpickle`.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from blockqnn.data.archives import Remote, read_file, read_files
from blockqnn.data.catalog import Catalog, array_catalog
from blockqnn.data.errors import DatasetError
from blockqnn.data.splits import TEST, TRAIN
from blockqnn.data.unpickle import load_pickle

#: Where each archive is published, with its published md5. Tests may point these elsewhere.
REMOTES: dict[str, Remote] = {
    "cifar10": Remote(
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "c58f30108f718f92721af3b95e74349a",
        "cifar-10-python.tar.gz",
    ),
    "cifar100": Remote(
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "eb9058c3a382ffc7106e4002c42a8d85",
        "cifar-100-python.tar.gz",
    ),
}

#: Largest file read from a CIFAR source (the biggest official one, CIFAR-100's ``train``,
#: has 155 MB).
MAX_FILE_BYTES = 256 << 20
#: Most bytes read from a CIFAR source in all (the official ones take 178 and 185 MB).
MAX_TOTAL_BYTES = 320 << 20

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip


@dataclass(frozen=True)
class _Layout:
    folder: str
    train: tuple[str, ...]
    test: str
    label_key: str
    meta: str | None

    @property
    def files(self) -> tuple[str, ...]:
        return (*self.train, self.test) + ((self.meta,) if self.meta else ())


_LAYOUTS = {
    "cifar10": _Layout(
        "cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), "test_batch",
        "labels", None,
    ),
    "cifar100": _Layout("cifar-100-python", ("train",), "test", "fine_labels", "meta"),
}  # fmt: skip


def cifar_catalog(kind: str, path: Path) -> Catalog:
    """The official train and test sets of ``kind`` ("cifar10" or "cifar100") at ``path``."""
    layout = _LAYOUTS[kind]
    files = _read_source(path, layout)
    classes = _classes(files, layout, path)
    train = [_batch(files, name, layout, path, len(classes)) for name in layout.train]
    test = _batch(files, layout.test, layout, path, len(classes))
    x = torch.cat([b[0] for b in [*train, test]])
    labels = np.concatenate([b[1] for b in [*train, test]])
    tags = np.full(len(labels), TRAIN)
    tags[len(labels) - len(test[1]) :] = TEST
    return array_catalog(x, labels, tags, classes)


def _read_source(path: Path, layout: _Layout) -> dict[str, bytes]:
    if path.is_dir():
        folder = path / layout.folder if (path / layout.folder).is_dir() else path
        present = [folder / n for n in layout.files if (folder / n).is_file()]
        if sum(p.stat().st_size for p in present) > MAX_TOTAL_BYTES:
            raise DatasetError(f"{folder}: the CIFAR files take over {MAX_TOTAL_BYTES:,} bytes")
        files = {p.name: read_file(p, MAX_FILE_BYTES) for p in present}
    elif path.is_file():
        found = read_files(
            path,
            lambda name: posixpath.basename(name) in layout.files,
            MAX_FILE_BYTES,
            MAX_TOTAL_BYTES,
        )
        files = {posixpath.basename(name): data for name, data in found.items()}
    else:
        raise DatasetError(f"{path}: no such file or folder")
    missing = [n for n in layout.files if n not in files]
    if missing:
        raise DatasetError(f"{path}: missing {', '.join(missing)} (expected {layout.folder}/)")
    return files


def _field(record: object, key: str, where: str) -> object:
    if isinstance(record, dict):
        for k in (key, key.encode()):
            if k in record:
                return record[k]
    raise DatasetError(f"{where}: expected a dict with key {key!r}")


def _batch(
    files: dict[str, bytes], name: str, layout: _Layout, path: Path, num_classes: int
) -> tuple[torch.Tensor, np.ndarray]:
    where = f"{path}:{name}"
    record = load_pickle(files[name], where)
    data = _field(record, "data", where)
    labels = np.asarray(_field(record, layout.label_key, where))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise DatasetError(f"{where}: 'data' must be a uint8 N x 3072 array")
    if data.shape[1] != 3072 or labels.shape != (data.shape[0],) or labels.dtype.kind not in "iu":
        raise DatasetError(f"{where}: 'data' {data.shape} and labels {labels.shape} disagree")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DatasetError(f"{where}: labels outside 0..{num_classes - 1}")
    return torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()), labels.astype(np.int64)


def _classes(files: dict[str, bytes], layout: _Layout, path: Path) -> tuple[str, ...]:
    if layout.meta is None:
        return CIFAR10_CLASSES
    where = f"{path}:{layout.meta}"
    names = _field(load_pickle(files[layout.meta], where), "fine_label_names", where)
    if not isinstance(names, list) or not names:
        raise DatasetError(f"{where}: 'fine_label_names' must be a non-empty list")
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
