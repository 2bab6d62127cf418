"""Final training of a chosen block: long training with a checkpoint after every epoch,
resume, and at the end the model file, ``metrics.json`` and the test accuracy.

Files in the output directory: ``checkpoint.pt`` (rewritten atomically after every epoch:
the loop's whole state plus metadata naming the block, network, recipe, epochs and
dataset), ``model.pt`` (see :mod:`blockqnn.train.checkpoint`) and ``metrics.json``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from blockqnn import nsc
from blockqnn.data import Dataset, load_dataset
from blockqnn.errors import UserError
from blockqnn.files import atomic_write
from blockqnn.model import NetworkConfig, build
from blockqnn.nsc import Layer
from blockqnn.profile import count_params
from blockqnn.train.checkpoint import (
    CHECKPOINT_FORMAT,
    atomic_save,
    load_tagged,
    mismatch,
    save_model,
    tagged,
)
from blockqnn.train.loop import EpochStats, Loop
from blockqnn.train.recipes import FinalRecipe

logger = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"
METRICS = "metrics.json"

#: Metadata that must match for a checkpoint to be resumed.
_IDENTITY = ("codes", "network", "recipe", "epochs", "dataset")


class CheckpointError(ValueError, UserError):
    """A checkpoint that cannot be resumed, or one that resuming=False would overwrite."""


def train_final(
    codes: str | Sequence[Layer],
    data: str | Dataset,
    config: NetworkConfig,
    recipe: FinalRecipe,
    epochs: int,
    out_dir: str | os.PathLike[str],
    *,
    resume: bool = False,
    progress: Callable[[EpochStats], None] | None = None,
    seed: int = 0,
    device: str = "auto",
    amp: bool = False,
) -> dict[str, Any]:
    """Train the network of ``codes`` stacked with ``config`` for ``epochs`` epochs.

    ``data`` is a Dataset or a spec for :func:`blockqnn.data.load_dataset`; the network's
    classes, input channels and image size are taken from it. ``progress`` is called after
    each epoch's checkpoint is written (an exception from it stops training; the checkpoint
    stays). ``resume=True`` continues from ``out_dir``'s checkpoint; without it an existing
    checkpoint is never overwritten. Raises :class:`CheckpointError` for both cases.

    Returns the metrics also written to ``metrics.json``: ``test_accuracy``,
    ``best_val_accuracy``, ``last_val_accuracy`` (percent; None without a validation
    split), ``history`` (one dict per epoch), ``params``, ``model_file`` and the run's
    metadata (``codes``, ``network``, ``recipe``, ``epochs``, ``dataset``, ``seed``).
    """
    block = nsc.as_block(codes, sys.maxsize)
    data = load_dataset(data) if isinstance(data, str) else data
    config = dataclasses.replace(
        config, num_classes=data.num_classes, in_channels=data.channels, image_size=data.image_size
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = _metadata(block, config, recipe, epochs, data, seed)
    torch.manual_seed(seed)
    loop = Loop(build(block, config), data, recipe, epochs, seed=seed, device=device, amp=amp)
    _start(loop, out / CHECKPOINT, meta, resume)

    def after_epoch(stats: EpochStats) -> None:
        _save_checkpoint(loop, meta, out / CHECKPOINT)
        if progress is not None:
            progress(stats)

    loop.run(callback=after_epoch)
    return _finish(loop, data, meta, out)


def _save_checkpoint(loop: Loop, meta: dict[str, Any], path: Path) -> None:
    atomic_save(tagged(CHECKPOINT_FORMAT, {"meta": meta, "loop": loop.state_dict()}), path)


def _metadata(
    block: nsc.Block,
    config: NetworkConfig,
    recipe: FinalRecipe,
    epochs: int,
    data: Dataset,
    seed: int,
) -> dict[str, Any]:
    return {
        "codes": nsc.format_block(block),
        "network": config.to_dict(),
        "recipe": recipe.to_dict(),
        "epochs": epochs,
        "dataset": data.name,
        "seed": seed,
    }


def _start(loop: Loop, path: Path, meta: dict[str, Any], resume: bool) -> None:
    """Restore the loop from ``path`` when resuming; refuse to overwrite it otherwise."""
    if not resume:
        if path.exists():
            raise CheckpointError(
                f"{path} exists; resume it (--resume) or choose another output directory"
            )
        return
    if not path.exists():
        raise CheckpointError(f"nothing to resume: {path} does not exist")
    state = load_tagged(path, CHECKPOINT_FORMAT)
    saved, loop_state = state.get("meta"), state.get("loop")
    if not isinstance(saved, dict) or not isinstance(loop_state, dict):
        raise CheckpointError(f"{path}: checkpoint lacks its 'meta' and 'loop' records")
    _check_identity(path, saved, meta)
    try:
        loop.load_state_dict(loop_state)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"{path}: checkpoint does not match this training's network and optimiser "
            f"({mismatch(exc)})"
        ) from exc
    logger.info("resumed %s after epoch %d of %d", path, loop.epoch, loop.epochs)


def _check_identity(path: Path, saved: dict[str, Any], meta: dict[str, Any]) -> None:
    for key in _IDENTITY:
        if saved.get(key) != meta[key]:
            raise CheckpointError(
                f"{path} belongs to another training: its {key} is {saved.get(key)!r}, "
                f"not {meta[key]!r}"
            )


def _finish(loop: Loop, data: Dataset, meta: dict[str, Any], out: Path) -> dict[str, Any]:
    """Test accuracy, then the model file and ``metrics.json``; returns the metrics."""
    save_model(
        out / MODEL,
        loop.model,
        classes=data.classes,
        mean=data.mean,
        std=data.std,
        pixel_max=data.pixel_max,
    )
    vals = [s.val_accuracy for s in loop.history if not math.isnan(s.val_accuracy)]
    last = loop.history[-1].val_accuracy if loop.history else math.nan
    metrics = {
        **meta,
        "test_accuracy": loop.accuracy("test"),
        "best_val_accuracy": max(vals, default=None),
        "last_val_accuracy": None if math.isnan(last) else last,
        "params": count_params(loop.model),
        "model_file": str(out / MODEL),
        "history": [s.to_dict() for s in loop.history],
    }
    text = json.dumps(metrics, indent=2)
    atomic_write(out / METRICS, lambda f: f.write(text.encode()))
    logger.info("test accuracy %.2f%%; model saved to %s", metrics["test_accuracy"], out / MODEL)
    return metrics
