"""Training: recipes, the one training loop, the early-stop evaluator, final training and
the model file format. Everything here needs torch.

- :mod:`~blockqnn.train.recipes`: :class:`EarlyStopRecipe` (presets ``paper``, ``proxy``)
  and :class:`FinalRecipe` (presets ``cifar``, ``imagenet``), plain frozen data.
- :mod:`~blockqnn.train.loop`: :class:`Loop`, used by both of the following.
- :mod:`~blockqnn.train.evaluator`: :class:`TrainingEvaluator`, the search's evaluator.
- :mod:`~blockqnn.train.custom`: :class:`Budget`, what a user's training function gets.
- :mod:`~blockqnn.train.final`: :func:`train_final`, checkpointed and resumable.
- :mod:`~blockqnn.train.checkpoint`: :func:`save_model` / :func:`load` of model files.
"""

from __future__ import annotations

from blockqnn.train.checkpoint import ModelFileError, load, save_model
from blockqnn.train.custom import Budget
from blockqnn.train.evaluator import TrainingEvaluator
from blockqnn.train.final import CheckpointError, train_final
from blockqnn.train.loop import Diverged, EpochStats, Loop
from blockqnn.train.recipes import EARLY_STOP, FINAL, EarlyStopRecipe, FinalRecipe

__all__ = [
    "EARLY_STOP",
    "FINAL",
    "Budget",
    "CheckpointError",
    "Diverged",
    "EarlyStopRecipe",
    "EpochStats",
    "FinalRecipe",
    "Loop",
    "ModelFileError",
    "TrainingEvaluator",
    "load",
    "save_model",
    "train_final",
]
