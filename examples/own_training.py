"""Your own training function as the early stop, and a callback that stops the search.

    python examples/own_training.py [RUN_DIR] [EVALUATIONS]

``train(network, budget)`` runs in the worker processes: it gets the candidate's freshly
initialised network and a :class:`blockqnn.train.Budget` (epochs, device, seed, the data
with its splits and ``budget.loader(split)``) and returns the validation accuracy in percent,
or a mapping with ``accuracy`` and further named metrics. Its import path (here
``own_training:train``) is stored in the run, so ``PYTHONPATH=examples blockqnn search
--run-dir RUN_DIR --resume`` continues the run from the command line. An exception fails
the candidate with its message.
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F

import blockqnn


def train(network: torch.nn.Module, budget) -> dict[str, float]:
    """Plain SGD with momentum for ``budget.epochs`` epochs; validation accuracy and loss."""
    network.to(budget.device)
    optimizer = torch.optim.SGD(network.parameters(), lr=0.05, momentum=0.9)
    for _ in range(budget.epochs):
        network.train()
        for x, y in budget.loader("train", batch_size=32):
            optimizer.zero_grad()
            F.cross_entropy(network(x.to(budget.device)), y.to(budget.device)).backward()
            optimizer.step()
    network.eval()
    correct, loss, seen = 0, 0.0, 0
    with torch.no_grad():
        for x, y in budget.loader("val", batch_size=256):
            logits = network(x.to(budget.device))
            correct += int((logits.argmax(1).cpu() == y).sum())
            loss += float(F.cross_entropy(logits.cpu(), y, reduction="sum"))
            seen += len(y)
    return {"accuracy": 100 * correct / seen, "val_loss": loss / seen}


def stop_at(accuracy: float):
    """A callback that ends the search once a candidate reaches ``accuracy`` percent."""

    def callback(run: blockqnn.Run, candidate) -> None:
        if candidate.accuracy is not None and candidate.accuracy >= accuracy:
            print(f"#{candidate.id} reached {candidate.accuracy:.1f}%: stopping")
            run.stop()

    return callback


def main(run_dir: str = "runs/py-training", evaluations: int = 20) -> None:
    run = blockqnn.create_run(
        run_dir, dataset="digits", trainer=train, evaluations=evaluations, epochs=1,
        val_fraction=0.3, repeats=1, widths=(16, 32, 64),
    )  # fmt: skip
    run.search(workers=2, callbacks=[stop_at(95.0)])
    print(run.summary())


if __name__ == "__main__":
    main(*sys.argv[1:2], *map(int, sys.argv[2:3]))
