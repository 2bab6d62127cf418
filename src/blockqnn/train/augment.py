"""Batch augmentation with plain torch ops: random crop with zero padding, horizontal flip.

Random numbers come from a CPU ``torch.Generator`` (so a run is reproducible and its
state can be checkpointed) and are moved to the batch's device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def crop_padding(image_size: int) -> int:
    """The paper's 4-pixel padding at 32x32, scaled to other sizes: ``image_size // 8``."""
    return image_size // 8


def random_crop(x: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Each image of ``x [N, C, H, W]`` zero-padded by ``pad`` and cropped back to H x W at
    a random offset (independently per image)."""
    if pad <= 0:
        return x
    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy, dx = torch.randint(0, 2 * pad + 1, (2, n, 1), generator=generator).to(x.device)
    rows = (dy + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image of ``x [N, C, H, W]`` mirrored left-right with probability 1/2."""
    flip = (torch.rand(x.shape[0], generator=generator) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def crop_and_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random crop (padding :func:`crop_padding` of the image size), then random flip."""
    return random_flip(random_crop(x, crop_padding(x.shape[-1]), generator), generator)
