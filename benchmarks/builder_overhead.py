"""Training throughput of the built ``shortcut`` network against a hand-written module.

Both networks have the same layers and parameters (checked); they train side by side in
one process on one CPU thread with channels_last, alternating rounds so machine noise hits
both alike. Prints images/s for each and the ratio built / hand-written (target >= 0.97).

    python benchmarks/builder_overhead.py [--rounds 6] [--steps 3] [--batch 64]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from blockqnn import blocks, model
from blockqnn.model import pcc


class HandShortcut(nn.Module):
    """The Fig. 2 shortcut block written by hand: x -> conv3 -> conv3, added to x."""

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        self.conv1, self.conv2 = pcc(in_channels, width, 3), pcc(width, width, 3)
        self.skip = nn.Identity() if in_channels == width else pcc(in_channels, width, 1)
        self.out = pcc(width, width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.skip(x) + self.conv2(self.conv1(x)))


class HandNetwork(nn.Module):
    """The CIFAR stacking written out by hand for the shortcut block."""

    def __init__(self, config: model.NetworkConfig) -> None:
        super().__init__()
        c0 = config.widths[0]
        layers: list[nn.Module] = [
            nn.Conv2d(config.in_channels, c0, 3, padding=1, bias=False),
            nn.BatchNorm2d(c0),
        ]
        channels = c0
        for s, width in enumerate(config.widths):
            if s:
                layers.append(nn.MaxPool2d(2))
            for _ in range(config.repeats):
                layers.append(HandShortcut(channels, width))
                channels = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(channels, config.num_classes),
        )
        model.he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def train_rate(net: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    """Images per second over ``steps`` SGD steps (after the caller's warm-up)."""
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss_fn(net(x), y).backward()
        opt.step()
    return steps * x.shape[0] / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = model.cifar()
    built = model.build(blocks.get("shortcut"), config).to(memory_format=torch.channels_last)
    hand = HandNetwork(config).to(memory_format=torch.channels_last)
    n_built, n_hand = (sum(p.numel() for p in m.parameters()) for m in (built, hand))
    assert n_built == n_hand, f"parameter counts differ: {n_built} vs {n_hand}"
    x = torch.randn(args.batch, 3, 32, 32).to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (args.batch,))
    rates: dict[str, list[float]] = {"built": [], "hand": []}
    for net in (built, hand):
        train_rate(net, x, y, 1)  # warm-up
    for _ in range(args.rounds):
        for name, net in (("built", built), ("hand", hand)):
            rates[name].append(train_rate(net, x, y, args.steps))
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"network: shortcut block, CIFAR preset, {n_built:,} parameters, batch {args.batch}")
    print(f"built from codes: {med['built']:.1f} img/s (median of {args.rounds} rounds)")
    print(f"hand-written:     {med['hand']:.1f} img/s")
    print(f"ratio built/hand: {med['built'] / med['hand']:.3f} (target >= 0.97)")


if __name__ == "__main__":
    main()
