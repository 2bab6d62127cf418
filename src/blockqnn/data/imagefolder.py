"""Image folders, as a directory or a tar archive, decoded with Pillow.

Archives are streamed (never extracted): one pass lists the members, keeping their bytes if
they fit in ``MEMORY_BUDGET``; otherwise one more pass reads only the members chosen for
decoding. Only the chosen images are decoded. Images become RGB, or L when every chosen image is
grey, and are resized (bilinear, antialiased) to ``image_size`` or else to the most common
size among them.

Memory is bounded by the output, not by what a file claims: an image file over
``MAX_IMAGE_BYTES`` is refused before it is read; images are decoded one at a time and
dropped once resized; a JPEG over ``MAX_PIXELS`` pixels is decoded at the smallest
reduced scale (``Image.draft``) still at least the output size; an image that would still
decode to more than ``MAX_PIXELS`` pixels is refused before decoding. Images within the
limit decode exactly as before (full decode, then an antialiased resize).
"""

from __future__ import annotations

import io
import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from blockqnn.data.archives import read_file, read_files, scan_files
from blockqnn.data.catalog import Catalog
from blockqnn.data.errors import DatasetError
from blockqnn.data.layout import is_image, parse_layout

logger = logging.getLogger(__name__)

#: Most bytes of encoded images kept from the listing pass over an archive.
MEMORY_BUDGET = 512 << 20
#: Largest image file read (bytes).
MAX_IMAGE_BYTES = 64 << 20
#: Most pixels one image may decode to (4096 x 4096); larger ones are refused.
MAX_PIXELS = 1 << 24

_GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def imagefolder_catalog(path: Path) -> Catalog:
    """A catalogue of the images under ``path`` (a folder or a .tar/.tar.gz/.tar.xz)."""
    contents: dict[str, bytes] | None = None
    if path.is_dir():
        names = [p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()]
    elif path.is_file():
        names, contents = scan_files(path, is_image, MEMORY_BUDGET, MAX_IMAGE_BYTES)
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
        return {n: read_file(path / n, MAX_IMAGE_BYTES) for n in names}
    return read_files(path, set(names).__contains__, MAX_IMAGE_BYTES)


def decode_images(
    blobs: Sequence[bytes], names: Sequence[str], image_size: int | None, where: str
) -> torch.Tensor:
    """Encoded images as one uint8 tensor ``[n, C, H, W]`` (C = 1 if all are grey, else 3).

    ``names`` name the images in errors. Without ``image_size`` every image is resized to
    the most common size among them. Images are decoded one at a time (see the module
    docstring for the memory bounds); DatasetError for an unreadable or oversized image.
    """
    headers = [_header(blob, name, where) for blob, name in zip(blobs, names, strict=True)]
    mode = "L" if all(m in _GREY_MODES for _, m in headers) else "RGB"
    if image_size is None:
        size = Counter(s for s, _ in headers).most_common(1)[0][0]
    else:
        size = (image_size, image_size)
    out = np.empty((len(blobs), size[1], size[0], len(mode)), dtype=np.uint8)
    logger.info("decoding %d images of %s (once: the cache keeps them)", len(blobs), where)
    progress = tqdm(  # on a terminal, once decoding takes over a second
        total=len(blobs), desc=f"decoding {Path(where).name}", unit="img", delay=1,
        disable=None, leave=False,
    )  # fmt: skip
    with progress:
        for i, (blob, name) in enumerate(zip(blobs, names, strict=True)):
            out[i] = _decode(blob, mode, size, f"{where}:{name}")
            progress.update()
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def _header(blob: bytes, name: str, where: str) -> tuple[tuple[int, int], str]:
    """Size and mode of an encoded image, read from its header (nothing is decoded)."""
    with _open(blob, f"{where}:{name}") as im:
        return im.size, im.mode


def _open(blob: bytes, where: str) -> Image.Image:
    try:
        return Image.open(io.BytesIO(blob))
    except UnidentifiedImageError:  # its message names only the in-memory buffer
        raise DatasetError(
            f"{where}: not a readable image (an unknown or damaged format)"
        ) from None
    except _DECODE_ERRORS as exc:
        raise DatasetError(f"{where}: not a readable image ({exc})") from exc


def _decode(blob: bytes, mode: str, size: tuple[int, int], where: str) -> np.ndarray:
    """One image's pixels as ``[H, W, C]`` uint8 of ``size`` in ``mode``."""
    with _open(blob, where) as im:
        if im.size[0] * im.size[1] > MAX_PIXELS:
            try:
                im.draft(mode, size)  # JPEG: decode at a reduced scale, never below ``size``
            except _DECODE_ERRORS as exc:
                raise DatasetError(f"{where}: cannot decode ({exc})") from exc
        width, height = im.size
        if width * height > MAX_PIXELS:
            raise DatasetError(
                f"{where}: {width}x{height} pixels is over the {MAX_PIXELS:,}-pixel limit "
                "for one image; shrink the images first"
            )
        return _pixels(im, mode, size, where)


def _pixels(im: Image.Image, mode: str, size: tuple[int, int], where: str) -> np.ndarray:
    try:
        if im.mode != mode:
            im = im.convert(mode)
        if im.size != size:
            im = im.resize(size, Image.Resampling.BILINEAR)
        return np.asarray(im).reshape(size[1], size[0], len(mode))
    except _DECODE_ERRORS as exc:
        raise DatasetError(f"{where}: cannot decode ({exc})") from exc
