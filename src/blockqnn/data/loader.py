"""``load_dataset``: parse a spec, find or download the source, decode once, cache."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch

from blockqnn.data.archives import download as fetch_remote
from blockqnn.data.arrays import npz_catalog
from blockqnn.data.cache import cache_file, cache_root, load_cached, save_cached, source_fingerprint
from blockqnn.data.catalog import Catalog
from blockqnn.data.cifar import REMOTES, cifar_catalog
from blockqnn.data.dataset import Dataset
from blockqnn.data.digits import digits_catalog
from blockqnn.data.errors import DatasetError
from blockqnn.data.imagefolder import MAX_PIXELS, imagefolder_catalog
from blockqnn.data.mnist import mnist_catalog
from blockqnn.data.splits import plan_splits

logger = logging.getLogger(__name__)

#: Largest ``image_size``: an image of MAX_PIXELS pixels (4096 x 4096).
MAX_IMAGE_SIZE = math.isqrt(MAX_PIXELS)

#: Spec kind -> catalogue builder. ``digits`` takes no path; the others need one (CIFAR can
#: download it instead).
SOURCES: dict[str, Callable[[Path | None], Catalog]] = {
    "digits": lambda _path: digits_catalog(),
    "cifar10": lambda path: cifar_catalog("cifar10", path),
    "cifar100": lambda path: cifar_catalog("cifar100", path),
    "mnist": mnist_catalog,
    "imagefolder": imagefolder_catalog,
    "npz": npz_catalog,
}


def load_dataset(
    spec: str,
    *,
    val_fraction: float = 0.1,
    subset: int | None = None,
    image_size: int | None = None,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    download: bool = False,
) -> Dataset:
    """The dataset named by ``spec``, decoded once and then served from the cache.

    Specs: ``digits`` (scikit-learn's bundled 8x8 digits), ``cifar10:PATH``,
    ``cifar100:PATH`` (official python archive or its extracted folder; without PATH and
    with ``download=True`` the archive is downloaded into the cache and its md5 checked),
    ``mnist:DIR`` (idx files), ``imagefolder:PATH`` (folder or tar archive of
    ``<split>/<class>/<image>`` or ``<class>/<image>``), ``npz:PATH`` (arrays ``x`` and
    ``y``, see :mod:`blockqnn.data.arrays`).

    ``val_fraction`` of the training data is held out for validation (seeded, stratified)
    unless the source has a validation split; a source without a test split gets
    ``splits.TEST_FRACTION`` held out as test with a fixed seed, so the test set never
    depends on ``seed``. ``subset=N`` keeps N training images and shrinks validation and
    test by the same factor (at least one image per class). ``image_size=S`` resizes to
    S x S (bilinear, antialiased). The cache (``cache_dir``, else ``$BLOCKQNN_CACHE``, else
    ``~/.cache/blockqnn``) is keyed by the spec, the source's size and mtime, and the options.
    Raises DatasetError for a bad spec, option, file or archive.
    """
    _check_options(val_fraction, subset, image_size)
    kind, path = parse_spec(spec)
    root = cache_root(cache_dir)
    path = _resolve(kind, path, root, download)
    options = {"val_fraction": val_fraction, "subset": subset, "image_size": image_size}
    identity = {"kind": kind, "source": _identify(path), "seed": seed, **options}
    target = cache_file(root, kind, identity)
    data = load_cached(target)
    if data is None:
        data = build_dataset(kind, path, seed=seed, **options)
        save_cached(target, data)
    return data


def parse_spec(spec: str) -> tuple[str, Path | None]:
    """``"kind[:path]"`` -> (kind, path or None); DatasetError for an unknown kind."""
    kind, _, path = spec.partition(":")
    kind = kind.strip().lower()
    if kind not in SOURCES:
        raise DatasetError(f"unknown dataset spec {spec!r}; expected one of {', '.join(SOURCES)}")
    return kind, Path(path).expanduser().resolve() if path else None


def _check_options(val_fraction: float, subset: int | None, image_size: int | None) -> None:
    if not 0 <= val_fraction < 1:
        raise DatasetError(f"val_fraction={val_fraction} must be in [0, 1)")
    if subset is not None and subset < 1:
        raise DatasetError(f"subset={subset} must be a positive number of images")
    if image_size is not None and not 1 <= image_size <= MAX_IMAGE_SIZE:
        raise DatasetError(
            f"image_size={image_size} must be a number of pixels from 1 to {MAX_IMAGE_SIZE}"
        )


def _resolve(kind: str, path: Path | None, root: Path, download: bool) -> Path | None:
    """The source path; for CIFAR without one, the archive in the cache (downloaded if asked).

    ``download`` is ignored when a path is given.
    """
    if kind == "digits":
        if path is not None:
            raise DatasetError(f"digits:{path}: digits is bundled and takes no path")
        return None
    if path is not None:
        if not path.exists():
            raise DatasetError(f"{kind}: {path} does not exist")
        return path
    if kind not in REMOTES:
        raise DatasetError(f"{kind} needs a path: '{kind}:PATH'")
    remote = REMOTES[kind]
    archive = root / "downloads" / remote.filename
    if archive.is_file():
        return archive
    if not download:
        raise DatasetError(f"{kind}: no path given and {archive} absent; pass download=True")
    return fetch_remote(remote, archive.parent)


def _identify(path: Path | None) -> list:
    if path is None:  # bundled with scikit-learn
        return [version("scikit-learn")]
    return [str(path), *source_fingerprint(path)]


def build_dataset(
    kind: str, path: Path | None, *, val_fraction: float, subset: int | None,
    image_size: int | None, seed: int,
) -> Dataset:  # fmt: skip
    """Decode the chosen images of the source (nothing else) into a Dataset."""
    catalog = SOURCES[kind](path)
    plan = plan_splits(
        catalog.labels, catalog.tags, val_fraction=val_fraction, subset=subset, seed=seed
    )
    where = kind if path is None else f"{kind}:{path}"
    if len(plan.train) == 0:
        raise DatasetError(f"{where}: no training images left after the splits")
    _check_classes(where, catalog.classes, catalog.labels[plan.train])
    order = np.concatenate([plan.train, plan.val, plan.test])
    logger.info("decoding %d images of %s", len(order), kind)
    x = catalog.fetch(order, image_size)
    y = torch.from_numpy(catalog.labels[order])
    a, b = len(plan.train), len(plan.train) + len(plan.val)
    name = kind if path is None or kind != "imagefolder" else path.name.split(".")[0]
    return Dataset(name, x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:], catalog.classes)


def _check_classes(where: str, classes: tuple[str, ...], train_labels: np.ndarray) -> None:
    """DatasetError unless the training images hold at least two classes: a single class
    trains to 100% accuracy and says nothing about an architecture."""
    present = [classes[i] for i in np.unique(train_labels)]
    if len(present) < 2:
        raise DatasetError(
            f"{where}: the training images hold {len(present)} class(es) "
            f"({', '.join(present) or 'none'}); a classifier needs at least 2"
        )
