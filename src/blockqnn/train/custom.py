"""A user's own training function as the early stop of a block search.

The function (or class) is named by an import path (``module:qualname``, stored in the
run's configuration, see :mod:`blockqnn.importpath`) and called in the worker as
``train(network, budget)``: ``network`` is the candidate's He-initialised ``nn.Module``
(built, profiled and checked against the constraints as for the built-in evaluator),
``budget`` a :class:`Budget`. It returns the validation accuracy in percent, or a mapping
with ``accuracy`` and any further named metrics (numbers). An exception fails the
candidate with its message. A class is instantiated once per worker (no arguments) and
its instance called.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from blockqnn.data import Dataset
from blockqnn.evaluation import EvaluationError
from blockqnn.importpath import resolve

Trainer = Callable[[nn.Module, "Budget"], float | Mapping[str, float]]


@dataclass(frozen=True)
class Budget:
    """What a training function may spend on one candidate, and on what data.

    With rungs (multi-fidelity search) a candidate is trained in steps: ``start_epoch``
    epochs were trained by an earlier call, which could save its state at ``state``; a
    function that ignores both trains from scratch each time (correct, but slower).
    """

    epochs: int  #: train up to this many epochs in all
    data: Dataset  #: uint8 images with train / val / test splits; ``data.normalise(x)``
    device: torch.device  #: where to train
    seed: int  #: seeds shuffling (the network's initialisation is already seeded)
    amp: bool = False  #: mixed precision asked for (CUDA)
    start_epoch: int = 0  #: epochs already trained by the previous rung
    #: a file of this worker to continue from and to save to for the next rung (what the
    #: previous rung saved there travels with the candidate to whichever worker trains it)
    state: str | None = None
    last: bool = True  #: no further rung follows (nothing need be saved)

    def loader(self, split: str = "train", batch_size: int = 32) -> DataLoader:
        """Mini-batches ``(x, y)`` of ``split`` ("train", "val" or "test"), normalised float32
        on the CPU; the training split is shuffled (seeded)."""
        x, y = getattr(self.data, f"x_{split}"), getattr(self.data, f"y_{split}")
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(
            TensorDataset(self.data.normalise(x), y),
            batch_size=batch_size,
            shuffle=split == "train",
            generator=generator,
        )


@cache
def trainer(path: str) -> Trainer:
    """The training function ``path`` names (a class instantiated once); ValueError when it
    cannot be imported or is not callable."""
    obj = resolve(path)
    if isinstance(obj, type):
        obj = obj()
    if not callable(obj):
        raise ValueError(f"trainer {path}: {type(obj).__name__} is not callable")
    return obj


def accuracy_and_metrics(returned: Any, path: str) -> tuple[float, dict[str, float]]:
    """The accuracy and further metrics a training function returned (EvaluationError for
    anything but a number or a mapping with a finite ``accuracy``)."""
    metrics = dict(returned) if isinstance(returned, Mapping) else {"accuracy": returned}
    accuracy = metrics.pop("accuracy", None)
    if isinstance(accuracy, bool) or not isinstance(accuracy, int | float):
        raise EvaluationError(
            f"trainer {path} must return the accuracy or a mapping with 'accuracy', "
            f"got {returned!r}"
        )
    if not math.isfinite(accuracy):
        raise EvaluationError(f"trainer {path} returned a non-finite accuracy {accuracy}")
    return float(accuracy), metrics
