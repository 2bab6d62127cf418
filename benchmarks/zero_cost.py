"""Would a zero-cost pre-filter help? Scores at initialisation against measured accuracy.

A pre-filter (a score from one forward/backward pass at initialisation deciding which
proposals are trained at all) is only worth building if its score ranks blocks as their
early-stop accuracy does, better than what is already free or cheap: the parameter count
(known before training) and the first rung (one epoch). This script reads a finished run
trained with the plain early stop and, for every measured candidate, computes at
initialisation (mean over ``--inits`` initialisations, one training batch of
``--batch`` images):

- ``grad_norm``: the sum over parameters of the L2 norm of the loss gradient;
- ``snip``: ``sum |theta * dL/dtheta|`` (Lee et al. 2019);
- ``naswot``: the log-determinant of the ReLU activation-pattern kernel (Mellor et al. 2021);
- ``params``: the parameter count;

and prints the Spearman rank correlation of each, and of the validation accuracy after
one epoch (from the run's stored curves), with the candidates' measured accuracy::

    blockqnn search --dataset imagefolder:../shared/data/cifar10-jpg.tar.xz --subset 4000 \\
        --image-size 16 --val-fraction 0.25 -N 1 --widths 16,32,64 --fidelity proxy \\
        --epochs 9 --strategy random --evaluations 24 --workers 2 --seed 7 --run-dir corr
    python benchmarks/zero_cost.py corr

The last line is a JSON object ``{"candidates": n, "spearman": {name: rho, ...}}``.
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch
from scipy.stats import spearmanr

from blockqnn.model import build
from blockqnn.store import RunStore
from blockqnn.train.evaluator import TrainingEvaluator, data_shape

SCORES = ("grad_norm", "snip", "naswot", "params")


def scores_at_init(network: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict:
    """The zero-cost scores of ``network`` (freshly initialised, training mode) on one batch."""
    patterns: list[torch.Tensor] = []
    hooks = [
        module.register_forward_hook(
            lambda _m, _i, out: patterns.append((out.detach() > 0).flatten(1).float())
        )
        for module in network.modules()
        if isinstance(module, torch.nn.ReLU)
    ]
    loss = torch.nn.functional.cross_entropy(network(x), y)
    for hook in hooks:
        hook.remove()
    loss.backward()
    grads = [(p, p.grad) for p in network.parameters() if p.grad is not None]
    codes = torch.cat(patterns, 1)
    kernel = codes @ codes.t() + (1 - codes) @ (1 - codes).t()  # units where two images agree
    return {
        "grad_norm": sum(g.norm().item() for _, g in grads),
        "snip": sum((p * g).abs().sum().item() for p, g in grads),
        "naswot": torch.slogdet(kernel.double())[1].item(),
        "params": float(sum(p.numel() for p in network.parameters())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a finished run directory (training evaluator)")
    parser.add_argument("--batch", type=int, default=64, help="images in the scoring batch")
    parser.add_argument("--inits", type=int, default=3, help="initialisations per block")
    args = parser.parse_args()
    torch.set_num_threads(1)
    store = RunStore.open(args.run)
    evaluator = store.config["evaluator"]
    if evaluator.get("kind") != "train":
        raise SystemExit(f"{args.run}: not a training run (evaluator {evaluator.get('kind')})")
    trainer = TrainingEvaluator.from_dict({k: v for k, v in evaluator.items() if k != "kind"})
    data = trainer.load_data()
    config = trainer.network_config(**data_shape(data))
    picked = torch.randperm(len(data.y_train), generator=torch.Generator().manual_seed(0))
    x, y = data.normalise(data.x_train[picked[: args.batch]]), data.y_train[picked[: args.batch]]
    measured = [c for c in store.candidates() if c.accuracy is not None and c.reused_from is None]
    values: dict[str, list[float]] = {name: [] for name in (*SCORES, "1 epoch")}
    for candidate in measured:
        runs = []
        for init in range(args.inits):
            torch.manual_seed(init)
            runs.append(scores_at_init(build(candidate.arch, config).train(), x, y))
        for name in SCORES:
            values[name].append(statistics.fmean(run[name] for run in runs))
        first = [p["val_accuracy"] for p in store.curve(candidate.id) if p["epoch"] == 1]
        values["1 epoch"].append(first[0] if first else float("nan"))
    accuracy = [c.accuracy for c in measured]
    rho = {name: float(spearmanr(v, accuracy)[0]) for name, v in values.items()}
    for name, value in rho.items():
        print(f"{name:>10}: Spearman {value:+.2f} with the measured accuracy")
    print(json.dumps({"candidates": len(measured), "spearman": rho}))


if __name__ == "__main__":
    main()
