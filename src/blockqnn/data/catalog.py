"""What a source offers before decoding: labels, split tags and a way to fetch images."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

#: ``fetch(indices, image_size)`` returns the chosen items as uint8 ``[n, C, H, W]`` in the
#: order of ``indices``, resized to ``image_size`` x ``image_size`` when it is not None.
Fetch = Callable[[np.ndarray, int | None], torch.Tensor]

_RESIZE_CHUNK = 2048


@dataclass(frozen=True)
class Catalog:
    """All items of a source: int64 ``labels``, split ``tags`` (see ``splits``), classes.

    Nothing is decoded until ``fetch`` is called, and then only the items asked for.
    """

    labels: np.ndarray
    tags: np.ndarray
    classes: tuple[str, ...]
    fetch: Fetch


def array_catalog(
    x: torch.Tensor, labels: np.ndarray, tags: np.ndarray, classes: tuple[str, ...]
) -> Catalog:
    """A catalogue over images already in memory (uint8 ``[N, C, H, W]``)."""

    def fetch(indices: np.ndarray, image_size: int | None) -> torch.Tensor:
        return resize(x[torch.from_numpy(indices)], image_size)

    return Catalog(np.asarray(labels, dtype=np.int64), np.asarray(tags), classes, fetch)


def resize(x: torch.Tensor, size: int | None) -> torch.Tensor:
    """uint8 images resized to ``size`` x ``size`` (bilinear, antialiased); as is if None."""
    if size is None or tuple(x.shape[2:]) == (size, size):
        return x
    out = torch.empty((x.shape[0], x.shape[1], size, size), dtype=torch.uint8)
    for start in range(0, x.shape[0], _RESIZE_CHUNK):
        chunk = x[start : start + _RESIZE_CHUNK].float()
        chunk = F.interpolate(chunk, size=(size, size), mode="bilinear", antialias=True)
        out[start : start + _RESIZE_CHUNK] = chunk.round_().clamp_(0, 255).to(torch.uint8)
    return out
