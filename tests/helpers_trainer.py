"""Training functions (and an evaluator factory) for the API tests; a module of their own
so spawned workers import them by their import path (``tests.helpers_trainer:NAME``)."""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from blockqnn.tabular import TabularEvaluator
from blockqnn.train import Budget


def train(network: torch.nn.Module, budget: Budget) -> dict[str, float]:
    """Adam for ``budget.epochs`` epochs; the validation accuracy, the epochs trained before
    this call (``start_epoch``) and whether a rung state path was given (``has_state``)."""
    optimizer = torch.optim.Adam(network.parameters(), lr=3e-3)
    network.to(budget.device).train()
    for _ in range(budget.start_epoch, budget.epochs):
        for x, y in budget.loader("train", batch_size=32):
            optimizer.zero_grad()
            F.cross_entropy(network(x), y).backward()
            optimizer.step()
    network.eval()
    correct = seen = 0
    with torch.no_grad():
        for x, y in budget.loader("val", batch_size=256):
            correct += int((network(x).argmax(1) == y).sum())
            seen += len(y)
    return {
        "accuracy": 100 * correct / seen,
        "start_epoch": budget.start_epoch,
        "has_state": float(budget.state is not None),
    }


def fails(network: torch.nn.Module, budget: Budget) -> float:
    raise RuntimeError("my own training broke")


def stalls(network: torch.nn.Module, budget: Budget) -> float:
    time.sleep(60)
    return 50.0


class Constant:
    """A training class: instantiated once per worker, its instance called."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, network: torch.nn.Module, budget: Budget) -> float:
        self.calls += 1
        return 40.0 + self.calls


def table_evaluator(options: dict) -> TabularEvaluator:
    """An evaluator factory named by its import path as a run's evaluator kind."""
    return TabularEvaluator(**options)
