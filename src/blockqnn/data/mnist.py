"""MNIST-style idx files (``train-images-idx3-ubyte[.gz]`` and friends) in a folder."""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from blockqnn.data.catalog import Catalog, array_catalog
from blockqnn.data.errors import DatasetError
from blockqnn.data.splits import TEST, TRAIN

#: idx type byte -> numpy dtype (big-endian, as the format stores it).
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

MNIST_CLASSES = tuple(str(d) for d in range(10))

#: Largest idx file read, after decompression (MNIST's training images take 47 MB).
MAX_FILE_BYTES = 256 << 20
#: Longest idx header: magic and 255 dimensions.
_MAX_HEADER = 4 + 4 * 255


@dataclass(frozen=True)
class IdxHeader:
    """An idx file's header: its dimensions, element type and where the data begins."""

    dims: tuple[int, ...]
    dtype: np.dtype
    offset: int

    @property
    def file_bytes(self) -> int:
        """The size the whole file must have (Python ints: no header wraps around)."""
        return self.offset + math.prod(self.dims) * self.dtype.itemsize


def read_header(data: bytes, where: str) -> IdxHeader:
    """The header at the start of ``data``: magic ``00 00 <type> <ndim>``, then ndim
    big-endian uint32 sizes. DatasetError naming ``where`` for a bad magic number, an
    unknown type or a truncated header."""
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in _IDX_TYPES:
        raise DatasetError(f"{where}: bad idx magic number {data[:4].hex() or '(empty)'}")
    ndim = data[3]
    if ndim == 0 or len(data) < 4 + 4 * ndim:
        raise DatasetError(f"{where}: idx header declares {ndim} dimensions but is truncated")
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return IdxHeader(dims, np.dtype(_IDX_TYPES[data[2]]), 4 + 4 * ndim)


def parse_idx(data: bytes, where: str) -> np.ndarray:
    """Decode an idx file; DatasetError naming ``where`` for a bad header or a payload
    whose length disagrees with the header."""
    header = read_header(data, where)
    if len(data) != header.file_bytes:
        raise DatasetError(
            f"{where}: idx header {header.dims} needs {header.file_bytes:,} bytes, "
            f"file has {len(data):,}"
        )
    return np.frombuffer(data, header.dtype, offset=header.offset).reshape(header.dims)


def mnist_catalog(folder: Path) -> Catalog:
    """The 60,000 training and 10,000 test images (1 x 28 x 28) of the idx files in ``folder``."""
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder with MNIST idx files")
    train_x, train_y = _pair(folder, "train")
    test_x, test_y = _pair(folder, "t10k")
    x = torch.from_numpy(np.concatenate([train_x, test_x])).unsqueeze(1)
    labels = np.concatenate([train_y, test_y]).astype(np.int64)
    tags = np.concatenate([np.full(len(train_y), TRAIN), np.full(len(test_y), TEST)])
    return array_catalog(x, labels, tags, MNIST_CLASSES)


def _pair(folder: Path, stem: str) -> tuple[np.ndarray, np.ndarray]:
    images_path, images = _read(folder, f"{stem}-images", 3)
    labels_path, labels = _read(folder, f"{stem}-labels", 1)
    if images.dtype != np.uint8 or labels.dtype != np.uint8:
        raise DatasetError(
            f"{images_path}, {labels_path}: images and labels must be unsigned bytes"
        )
    if len(images) != len(labels):
        raise DatasetError(
            f"{images_path}: {len(images)} images but {labels_path} has {len(labels)} labels"
        )
    if labels.size and labels.max() >= len(MNIST_CLASSES):
        raise DatasetError(f"{labels_path}: labels outside 0..9")
    return images, labels


def _read(folder: Path, base: str, ndim: int) -> tuple[Path, np.ndarray]:
    names = [f"{base}{sep}idx{ndim}-ubyte{ext}" for sep in "-." for ext in ("", ".gz")]
    path = next((folder / n for n in names if (folder / n).is_file()), None)
    if path is None:
        raise DatasetError(f"{folder}: missing {names[0]} (or {names[1]})")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            start = f.read(_MAX_HEADER)
            size = read_header(start, str(path)).file_bytes  # a small .gz may inflate to
            if size > MAX_FILE_BYTES:  # anything: read no more than the header declares
                raise DatasetError(
                    f"{path}: idx header declares {size:,} bytes, over the "
                    f"{MAX_FILE_BYTES:,}-byte limit for one idx file"
                )
            data = start + f.read(max(size + 1 - len(start), 0))
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from exc
    array = parse_idx(data, str(path))
    if array.ndim != ndim:
        raise DatasetError(f"{path}: expected {ndim} dimensions, header has {array.ndim}")
    return path, array
