"""Image folders, as a directory or a tar archive, decoded with Pillow.

Archives are streamed (never extracted): one pass lists the members and reads each
image's header (size and mode), keeping the encoded bytes while they fit in
``MEMORY_BUDGET``; otherwise one more pass decodes the members chosen as the stream
reaches them. Only the chosen images are decoded. Images become RGB, or L when every
chosen image is grey, and are resized (bilinear, antialiased) to ``image_size`` or else to
the most common size among them.

Memory is bounded by limits checked before anything is allocated, not by what a file
claims: an image file over ``MAX_IMAGE_BYTES`` is refused before it is read; encoded
images are read and decoded one at a time (beyond the listing's budget), each dropped once
resized into the output; the output (which is also what the cache holds) may take at most
``MAX_DATASET_BYTES``; without ``image_size`` images larger than ``MAX_NATIVE_SIDE``
pixels a side are refused (pass ``image_size``); a JPEG over ``MAX_PIXELS`` pixels is
decoded at the smallest reduced scale (``Image.draft``) still at least the output size; an
image that would still decode to more than ``MAX_PIXELS`` pixels is refused before
decoding. Images within the limit decode exactly as before (full decode, then an
antialiased resize).
"""

from __future__ import annotations

import io
import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from blockqnn.data.archives import check_file_size, iter_files, read_file
from blockqnn.data.catalog import Catalog
from blockqnn.data.errors import DatasetError
from blockqnn.data.layout import is_image, parse_layout

logger = logging.getLogger(__name__)

#: Most bytes of encoded images kept from the listing pass over an archive.
MEMORY_BUDGET = 256 << 20
#: Largest image file read (bytes).
MAX_IMAGE_BYTES = 64 << 20
#: Most pixels one image may decode to (4096 x 4096); larger ones are refused.
MAX_PIXELS = 1 << 24
#: Most bytes the decoded images (and so their cache file) may take.
MAX_DATASET_BYTES = 512 << 20
#: Largest side of the most common image size used without ``image_size``.
MAX_NATIVE_SIDE = 256

_GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


@dataclass(frozen=True)
class Header:
    """What an encoded image's header says: ``(width, height)`` and Pillow's mode."""

    size: tuple[int, int]
    mode: str


def imagefolder_catalog(path: Path) -> Catalog:
    """A catalogue of the images under ``path`` (a folder or a .tar/.tar.gz/.tar.xz)."""
    if path.is_dir():
        source: _Folder | _Archive = _Folder(path)
    elif path.is_file():
        source = _Archive(path)
    else:
        raise DatasetError(f"{path}: no such folder or archive")
    layout = parse_layout(source.names, str(path))

    def fetch(indices: np.ndarray, image_size: int | None) -> torch.Tensor:
        chosen = [layout.names[i] for i in indices]
        headers = [source.header(n) for n in chosen]
        return decode_images(source.blobs(chosen), chosen, headers, image_size, str(path))

    return Catalog(layout.labels, layout.tags, layout.classes, fetch)


class _Folder:
    """The image files of a folder: names, headers read lazily, bytes read one at a time."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.names = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]

    def header(self, name: str) -> Header:
        check_file_size(self.root / name, MAX_IMAGE_BYTES)
        try:
            with Image.open(self.root / name) as im:
                return Header(im.size, im.mode)
        except _DECODE_ERRORS as exc:
            raise DatasetError(f"{self.root}:{name}: not a readable image ({exc})") from exc

    def blobs(self, chosen: Sequence[str]) -> Iterator[tuple[str, bytes]]:
        return ((n, read_file(self.root / n, MAX_IMAGE_BYTES)) for n in chosen)


class _Archive:
    """The images of an archive, listed in one pass that keeps the encoded bytes while all
    fit in ``MEMORY_BUDGET`` (their headers are read when asked for); past the budget every
    image's header is read as the stream reaches it and its bytes dropped, and
    :meth:`blobs` streams the chosen ones in a second pass. An unreadable image is refused
    once chosen."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.names: list[str] = []
        self._headers: dict[str, Header | str] = {}  # a header, or why there is none
        self._kept: dict[str, bytes] | None = {}
        total = 0
        for name, blob in iter_files(path, is_image, MAX_IMAGE_BYTES):
            if name in self._headers or (self._kept and name in self._kept):
                raise DatasetError(f"{path}: member {name!r} appears twice")
            self.names.append(name)
            total += len(blob)
            if self._kept is not None and total <= MEMORY_BUDGET:
                self._kept[name] = blob
                continue
            if self._kept:  # over the budget: keep the headers only
                for kept_name, kept_blob in self._kept.items():
                    self._headers[kept_name] = self._inspect(kept_name, kept_blob)
            self._kept = None
            self._headers[name] = self._inspect(name, blob)

    def _inspect(self, name: str, blob: bytes) -> Header | str:
        try:
            return _header(blob, f"{self.path}:{name}")
        except DatasetError as exc:  # kept as text: the error's frames hold the bytes
            return str(exc)

    def header(self, name: str) -> Header:
        found = self._headers.get(name) or self._inspect(name, self._kept[name])
        if isinstance(found, str):
            raise DatasetError(found)
        return found

    def blobs(self, chosen: Sequence[str]) -> Iterator[tuple[str, bytes]]:
        if self._kept is not None:
            kept = self._kept
            return ((n, kept[n]) for n in chosen)
        logger.info("reading %d images from %s", len(chosen), self.path)
        return iter_files(self.path, set(chosen).__contains__, MAX_IMAGE_BYTES)


def decode_images(
    blobs: Iterable[tuple[str, bytes]],
    names: Sequence[str],
    headers: Sequence[Header],
    image_size: int | None,
    where: str,
) -> torch.Tensor:
    """The images ``names`` as one uint8 tensor ``[n, C, H, W]`` in that order (C = 1 if
    all are grey, else 3), from their ``headers`` and their encoded bytes ``blobs``
    (``(name, bytes)`` in any order, each decoded into place and dropped).

    Without ``image_size`` every image is resized to the most common size among them.
    Before anything is allocated, DatasetError if that size is over ``MAX_NATIVE_SIDE`` a
    side or the output would take over ``MAX_DATASET_BYTES``; also for an unreadable or
    oversized image (see the module docstring).
    """
    mode = "L" if all(h.mode in _GREY_MODES for h in headers) else "RGB"
    if image_size is None:
        size = Counter(h.size for h in headers).most_common(1)[0][0]
        if max(size) > MAX_NATIVE_SIDE:
            raise DatasetError(
                f"{where}: most images are {size[0]}x{size[1]}, over {MAX_NATIVE_SIDE} pixels "
                "a side; pass --image-size to resize them"
            )
    else:
        size = (image_size, image_size)
    nbytes = len(names) * len(mode) * size[0] * size[1]
    if nbytes > MAX_DATASET_BYTES:
        raise DatasetError(
            f"{where}: {len(names):,} images of {len(mode)}x{size[1]}x{size[0]} take "
            f"{nbytes:,} bytes, over the {MAX_DATASET_BYTES:,}-byte limit; pass a smaller "
            "--image-size or --subset"
        )
    rows = {name: i for i, name in enumerate(names)}
    out = np.empty((len(names), len(mode), size[1], size[0]), dtype=np.uint8)
    logger.info("decoding %d images of %s (once: the cache keeps them)", len(names), where)
    progress = tqdm(  # on a terminal, once decoding takes over a second
        total=len(names), desc=f"decoding {Path(where).name}", unit="img", delay=1,
        disable=None, leave=False,
    )  # fmt: skip
    with progress:
        for name, blob in blobs:
            out[rows.pop(name)] = _decode(blob, mode, size, f"{where}:{name}").transpose(2, 0, 1)
            progress.update()
    if rows:  # the source changed since it was listed
        raise DatasetError(f"{where}: {next(iter(rows))!r} is gone; load the dataset again")
    return torch.from_numpy(out)


def _header(blob: bytes, where: str) -> Header:
    """Size and mode of an encoded image, read from its header (nothing is decoded)."""
    with _open(blob, where) as im:
        return Header(im.size, im.mode)


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
