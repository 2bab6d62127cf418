"""scikit-learn's bundled 8x8 handwritten digits: the offline default dataset."""

from __future__ import annotations

import numpy as np
import torch

from blockqnn.data.catalog import Catalog, array_catalog
from blockqnn.data.splits import TRAIN

#: The digits' own pixel scale: scikit-learn gives values 0..16 (stored here as 0..255).
PIXEL_MAX = 16.0


def digits_catalog() -> Catalog:
    """1,797 grey 8x8 images (values 0..16 scaled to 0..255), classes "0".."9", no splits."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pixels = np.rint(bunch.images * (255 / PIXEL_MAX)).clip(0, 255).astype(np.uint8)
    x = torch.from_numpy(pixels).unsqueeze(1).contiguous()
    labels = bunch.target.astype(np.int64)
    classes = tuple(str(c) for c in bunch.target_names)
    return array_catalog(x, labels, np.full(len(labels), TRAIN), classes)
