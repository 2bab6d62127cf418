"""The on-disk cache of decoded datasets, so worker processes never decode again.

A cache file holds only tensors and plain values and is read with
``torch.load(weights_only=True)``. It is written to a temporary file and renamed, so readers
never see half a file; a file that cannot be read is reported, ignored and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import fields
from pathlib import Path

import torch

from blockqnn.data.dataset import Dataset

logger = logging.getLogger(__name__)

#: Environment variable naming the cache folder (default ``~/.cache/blockqnn``).
CACHE_ENV = "BLOCKQNN_CACHE"

#: Bump when the stored layout or the meaning of an option changes.
CACHE_VERSION = 1


def cache_root(cache_dir: str | os.PathLike | None) -> Path:
    """``cache_dir``, else ``$BLOCKQNN_CACHE``, else ``~/.cache/blockqnn``."""
    if cache_dir is None:
        cache_dir = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "blockqnn"
    return Path(cache_dir).expanduser()


def source_fingerprint(path: Path) -> list:
    """Size and mtime of a file; for a folder, a digest of every file's name, size, mtime."""
    if path.is_file():
        stat = path.stat()
        return [stat.st_size, stat.st_mtime_ns]
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        stat = file.stat()
        digest.update(f"{file.relative_to(path)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return [digest.hexdigest()]


def cache_file(root: Path, name: str, identity: dict) -> Path:
    """Where the dataset described by ``identity`` (JSON-able) is cached under ``root``."""
    text = json.dumps({"version": CACHE_VERSION, **identity}, sort_keys=True, default=str)
    key = hashlib.sha256(text.encode()).hexdigest()[:24]
    return root / "datasets" / f"{name}-{key}.pt"


def load_cached(path: Path) -> Dataset | None:
    """The dataset cached at ``path``; None when absent or unreadable (with a warning)."""
    if not path.is_file():
        return None
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
        data = Dataset(**{k: _untuple(k, v) for k, v in record.items()})
    except Exception as exc:  # any unreadable cache file is rebuilt, whatever the cause
        logger.warning("ignoring unreadable dataset cache %s (%s); rebuilding", path, exc)
        return None
    logger.info("loaded %s from cache %s", data.name, path)
    return data


def _untuple(key: str, value: object) -> object:
    return tuple(value) if key in ("classes", "mean", "std") else value


def save_cached(path: Path, data: Dataset) -> None:
    """Write ``data`` to ``path`` atomically (temporary file, then ``os.replace``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {f.name: getattr(data, f.name) for f in fields(data)}
    record.update(classes=list(data.classes), mean=list(data.mean), std=list(data.std))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(record, tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    logger.info("cached %s at %s", data.name, path)
