"""Measured inference latency of a network on the device it sits on.

:func:`measure_latency` times forward passes in eval mode under ``torch.inference_mode``
(float32, ``channels_last`` as in training) at batch 1 and at a throughput batch: after
``warmup`` untimed passes, ``repeats`` timed passes each, CUDA synchronised around every
pass; the figure is the median, in milliseconds per image. The measurement records the
host and device it was taken on: a latency only means something there.
"""

from __future__ import annotations

import logging
import socket
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Latency:
    """Milliseconds per image at batch 1 and at ``batch``, and where they were measured."""

    ms: float  #: median milliseconds for one image at batch 1
    batch_ms: float  #: median milliseconds per image at ``batch``
    batch: int  #: the throughput batch size
    device: str  #: e.g. "cpu" or "cuda:0 (NVIDIA H200)"
    host: str  #: the machine's host name
    seconds: float  #: wall time the measurement took (warm-up included)

    def metrics(self) -> dict[str, float]:
        """The run-store metrics: ``latency_ms`` and ``latency_batch_ms``."""
        return {"latency_ms": self.ms, "latency_batch_ms": self.batch_ms}

    def details(self) -> dict[str, Any]:
        """Where and how it was measured (for a result's ``extra``)."""
        data = asdict(self)
        return {f"latency_{k}": data[k] for k in ("batch", "device", "host", "seconds")}


def measure_latency(
    model: nn.Module,
    in_channels: int,
    image_size: int,
    *,
    batch: int = 64,
    warmup: int = 2,
    repeats: int = 5,
) -> Latency:
    """Time ``model`` on the device of its parameters; its train/eval mode is restored.

    ValueError unless ``batch``, ``repeats`` >= 1 and ``warmup`` >= 0.
    """
    if batch < 1 or repeats < 1 or warmup < 0:
        raise ValueError(f"need batch, repeats >= 1 and warmup >= 0: {batch}, {repeats}, {warmup}")
    device = next(model.parameters()).device
    start = time.perf_counter()
    was_training = model.training
    model.eval()
    try:
        per_image = [
            _median_ms(model, _input(n, in_channels, image_size, device), warmup, repeats) / n
            for n in (1, batch)
        ]
    finally:
        model.train(was_training)
    latency = Latency(
        ms=per_image[0],
        batch_ms=per_image[1],
        batch=batch,
        device=_describe(device),
        host=socket.gethostname(),
        seconds=time.perf_counter() - start,
    )
    logger.debug("latency %s", latency)
    return latency


def _input(n: int, channels: int, size: int, device: torch.device) -> torch.Tensor:
    """Random images from a private generator (the global random state is left alone)."""
    x = torch.randn(n, channels, size, size, generator=torch.Generator().manual_seed(0))
    return x.to(device).contiguous(memory_format=torch.channels_last)


def _median_ms(model: nn.Module, x: torch.Tensor, warmup: int, repeats: int) -> float:
    """Median wall milliseconds of one forward pass of ``x``."""
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            _sync(x.device)
            start = time.perf_counter()
            model(x)
            _sync(x.device)
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _describe(device: torch.device) -> str:
    if device.type != "cuda":
        return device.type
    return f"{device} ({torch.cuda.get_device_name(device)})"
