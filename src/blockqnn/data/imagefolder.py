"""Image folders, as a directory or a tar archive, decoded with Pillow.

Archives are streamed (never extracted): one pass lists the members, keeping their bytes if
they fit in ``MEMORY_BUDGET``; otherwise one more pass reads only the members chosen for
decoding. Only the chosen images are decoded. Images become RGB, or L when every chosen image is
grey, and are resized (bilinear, antialiased) to ``image_size`` or else to the most common
size among them.
"""

from __future__ import annotations

import io
import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from blockqnn.data.archives import read_files, scan_files
from blockqnn.data.catalog import Catalog
from blockqnn.data.errors import DatasetError
from blockqnn.data.layout import is_image, parse_layout

logger = logging.getLogger(__name__)

#: Most bytes of encoded images kept from the listing pass over an archive.
MEMORY_BUDGET = 512 << 20

_GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def imagefolder_catalog(path: Path) -> Catalog:
    """A catalogue of the images under ``path`` (a folder or a .tar/.tar.gz/.tar.xz)."""
    contents: dict[str, bytes] | None = None
    if path.is_dir():
        names = [p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()]
    elif path.is_file():
        names, contents = scan_files(path, is_image, MEMORY_BUDGET)
    else:
        raise DatasetError(f"{path}: no such folder or archive")
    layout = parse_layout(names, str(path))

    def fetch(indices: np.ndarray, image_size: int | None) -> torch.Tensor:
        chosen = [layout.names[i] for i in indices]
        blobs = contents if contents is not None else _read(path, chosen)
        return decode_images([blobs[n] for n in chosen], chosen, image_size, str(path))

    return Catalog(layout.labels, layout.tags, layout.classes, fetch)


def _read(path: Path, names: Sequence[str]) -> dict[str, bytes]:
    logger.info("reading %d images from %s", len(names), path)
    if path.is_dir():
        return {n: (path / n).read_bytes() for n in names}
    return read_files(path, set(names).__contains__)


def decode_images(
    blobs: Sequence[bytes], names: Sequence[str], image_size: int | None, where: str
) -> torch.Tensor:
    """Encoded images as one uint8 tensor ``[n, C, H, W]`` (C = 1 if all are grey, else 3).

    ``names`` name the images in errors. Without ``image_size`` every image is resized to
    the most common size among them.
    """
    images = [_open(blob, name, where) for blob, name in zip(blobs, names, strict=True)]
    mode = "L" if all(im.mode in _GREY_MODES for im in images) else "RGB"
    if image_size is None:
        size = Counter(im.size for im in images).most_common(1)[0][0]
    else:
        size = (image_size, image_size)
    out = np.empty((len(images), size[1], size[0], len(mode)), dtype=np.uint8)
    for i, (im, name) in enumerate(zip(images, names, strict=True)):
        out[i] = _pixels(im, mode, size, f"{where}:{name}")
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def _open(blob: bytes, name: str, where: str) -> Image.Image:
    try:
        return Image.open(io.BytesIO(blob))
    except _DECODE_ERRORS as exc:
        raise DatasetError(f"{where}:{name}: not a readable image ({exc})") from exc


def _pixels(im: Image.Image, mode: str, size: tuple[int, int], where: str) -> np.ndarray:
    try:
        im = im.convert(mode)
        if im.size != size:
            im = im.resize(size, Image.Resampling.BILINEAR)
        return np.asarray(im).reshape(size[1], size[0], len(mode))
    except _DECODE_ERRORS as exc:
        raise DatasetError(f"{where}: cannot decode ({exc})") from exc
