"""The one training loop, used by the early-stop evaluator and the final trainer.

:class:`Loop` trains a model on an in-memory :class:`~blockqnn.data.Dataset` with a
recipe (:mod:`blockqnn.train.recipes`): shuffled mini-batches of the uint8 training
images, normalised on the fly with the dataset's mean and std (float32, ``channels_last``),
optionally augmented, then validation accuracy after every epoch. On CUDA the images are
moved to the GPU once and ``amp=True`` trains under ``torch.autocast`` (float16) with a
``GradScaler``; on CPU ``amp`` is ignored.

A loop's whole state (model, optimiser, scaler, epoch, base learning rate, shuffling
generator, history) is :meth:`Loop.state_dict`: tensors and plain data only. The
learning-rate schedule is a pure function of the recipe, the epoch and the base rate.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from blockqnn.data import Dataset
from blockqnn.evaluation import EvaluationError
from blockqnn.train.augment import crop_and_flip
from blockqnn.train.recipes import Recipe

logger = logging.getLogger(__name__)


class Diverged(EvaluationError):
    """The training loss became NaN or infinite. ``epoch`` is 1-based."""

    def __init__(self, epoch: int) -> None:
        super().__init__(f"diverged: loss is NaN/inf at epoch {epoch}")
        self.epoch = epoch


@dataclass(frozen=True)
class EpochStats:
    """What one epoch of training measured."""

    epoch: int  #: 1-based number of the epoch just finished
    lr: float  #: learning rate used during it
    loss: float  #: mean training loss
    train_accuracy: float  #: accuracy on its (augmented) training batches, percent
    val_accuracy: float  #: validation accuracy after it, percent (NaN without a val split)
    seconds: float  #: wall time of the training part (validation excluded)
    images_per_s: float  #: training throughput
    val_loss: float = math.nan  #: mean validation cross-entropy after it (NaN without)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible dict."""
        return asdict(self)


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` (CUDA when available, else CPU), ``"cpu"`` or ``"cuda"``.

    ValueError for another name or for ``"cuda"`` without a GPU.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}; choose auto, cpu or cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' asked for, but torch sees no CUDA GPU")
    return torch.device(name)


def configure_cpu(threads: int) -> None:
    """Use ``threads`` intra-op torch threads in this process (one per worker is best)."""
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)


class Loop:
    """Trains ``model`` on ``data`` for ``epochs`` epochs with ``recipe``.

    ``lr`` overrides the recipe's initial learning rate; ``seed`` seeds the shuffling and
    augmentation generator (the model's initialisation is the caller's). Not thread-safe.
    """

    def __init__(
        self,
        model: nn.Module,
        data: Dataset,
        recipe: Recipe,
        epochs: int,
        *,
        lr: float | None = None,
        seed: int = 0,
        device: str = "auto",
        amp: bool = False,
    ) -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device, memory_format=torch.channels_last)
        self.recipe, self.epochs = recipe, epochs
        self.base_lr = recipe.lr if lr is None else lr
        self.optimizer = recipe.optimizer(self.model.parameters(), self.base_lr)
        self.amp = amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch = 0  #: epochs completed
        self.history: list[EpochStats] = []
        self._splits = {s: _split(data, s, self.device) for s in ("train", "val", "test")}
        self._scale, self._shift = _normaliser(data, self.device)

    def run(
        self, until: int | None = None, callback: Callable[[EpochStats], None] | None = None
    ) -> list[EpochStats]:
        """Train until ``until`` (default: all) epochs are complete; return the history.

        ``callback`` is called after every epoch. Raises :class:`Diverged` as soon as a
        training loss is not finite.
        """
        target = self.epochs if until is None else min(until, self.epochs)
        while self.epoch < target:
            stats = self.train_epoch()
            if callback is not None:
                callback(stats)
        return self.history

    def train_epoch(self) -> EpochStats:
        """One epoch of training followed by validation."""
        lr = self.recipe.lr_at(self.epoch, self.epochs, self.base_lr)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        start = time.perf_counter()
        loss, correct, seen = self._train_batches()
        seconds = time.perf_counter() - start
        self.epoch += 1
        val_accuracy, val_loss = self.measure("val")
        stats = EpochStats(
            epoch=self.epoch,
            lr=lr,
            loss=loss,
            train_accuracy=100 * correct / seen,
            val_accuracy=val_accuracy,
            seconds=seconds,
            images_per_s=seen / seconds,
            val_loss=val_loss,
        )
        self.history.append(stats)
        logger.info("epoch %d/%d: %s", self.epoch, self.epochs, _describe(stats))
        return stats

    def accuracy(self, split: str) -> float:
        """Accuracy in percent on ``"train"``, ``"val"`` or ``"test"`` (eval mode);
        NaN for an empty split."""
        return self.measure(split)[0]

    def measure(self, split: str) -> tuple[float, float]:
        """Accuracy in percent and mean cross-entropy on ``split`` (eval mode); both NaN
        for an empty split."""
        x, y = self._splits[split]
        if len(y) == 0:
            return math.nan, math.nan
        size = 2 * self.recipe.batch_size  # no activations kept: twice the training batch fits
        self.model.eval()
        correct, loss = 0, 0.0
        with torch.no_grad(), self._autocast():
            for xb, yb in zip(x.split(size), y.split(size), strict=True):
                logits = self.model(self._inputs(xb))
                correct += int((logits.argmax(1) == yb).sum())
                loss += float(F.cross_entropy(logits.float(), yb, reduction="sum"))
        return 100 * correct / len(y), loss / len(y)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue: tensors and plain data only."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "base_lr": self.base_lr,
            "generator": self.generator.get_state(),
            "history": [s.to_dict() for s in self.history],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` taken from a loop over the same model and recipe."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.base_lr = state["epoch"], state["base_lr"]
        self.generator.set_state(state["generator"])
        self.history = [EpochStats(**s) for s in state["history"]]

    def _train_batches(self) -> tuple[float, int, int]:
        """Mean loss, correct predictions and images over one shuffled pass."""
        x, y = self._splits["train"]
        self.model.train()
        order = torch.randperm(len(y), generator=self.generator).to(self.device)
        total, correct = 0.0, 0
        for index in order.split(self.recipe.batch_size):
            loss, hits = self._step(x[index], y[index])
            if not math.isfinite(loss):
                raise Diverged(self.epoch + 1)
            total, correct = total + loss * len(index), correct + hits
        return total / len(y), correct, len(y)

    def _step(self, xb: torch.Tensor, yb: torch.Tensor) -> tuple[float, int]:
        """One optimiser step; the batch's loss and correct predictions."""
        inputs = self._inputs(xb)
        if self.recipe.augment:
            inputs = crop_and_flip(inputs, self.generator)
        with self._autocast():
            logits = self.model(inputs)
            loss = F.cross_entropy(logits, yb)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.item(), int((logits.argmax(1) == yb).sum())

    def _inputs(self, xb: torch.Tensor) -> torch.Tensor:
        """uint8 images -> normalised float32, ``channels_last``."""
        out = torch.addcmul(self._shift, xb.to(torch.float32), self._scale)
        return out.contiguous(memory_format=torch.channels_last)

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp)


def _split(data: Dataset, split: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return getattr(data, f"x_{split}").to(device), getattr(data, f"y_{split}").to(device)


def _normaliser(data: Dataset, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scale, shift)`` with ``x * scale + shift == (x / 255 - mean) / std``."""
    mean = torch.tensor(data.mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    std = torch.tensor(data.std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    return 1 / (255 * std), -mean / std


def _describe(stats: EpochStats) -> str:
    return (
        f"loss {stats.loss:.4f}, train {stats.train_accuracy:.2f}%, "
        f"val {stats.val_accuracy:.2f}%, lr {stats.lr:.3g}, {stats.images_per_s:.0f} img/s"
    )
