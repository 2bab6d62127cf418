"""What is known about a candidate without training it: FLOPs, parameters, density.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` on one forward pass of
one image through the whole network in eval mode: convolutions and linear layers, two
FLOPs per multiply-accumulate. Pooling, normalisation and activations are not counted.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from blockqnn import nsc
from blockqnn.model import NetworkConfig, build
from blockqnn.nsc import Layer


@dataclass(frozen=True)
class Profile:
    """Cost figures of one network."""

    flops: int  #: forward FLOPs for one image (2 x multiply-accumulates)
    params: int  #: trainable parameters
    density: float  #: edges / nodes of the block DAG

    @property
    def gflops(self) -> float:
        """FLOPs in units of 1e9 (the reward's unit)."""
        return self.flops / 1e9


def count_params(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def count_flops(module: nn.Module, in_channels: int, image_size: int) -> int:
    """Forward FLOPs of ``module`` for one ``in_channels x image_size x image_size`` image."""
    was_training = module.training
    module.eval()
    try:
        x = torch.zeros(1, in_channels, image_size, image_size)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(x)
        return int(counter.get_total_flops())
    finally:
        module.train(was_training)


def profile_network(network: nn.Module, codes: Sequence[Layer], config: NetworkConfig) -> Profile:
    """Profile an already built network for ``codes`` stacked with ``config``."""
    return Profile(
        flops=count_flops(network, config.in_channels, config.image_size),
        params=count_params(network),
        density=nsc.density(codes),
    )


def profile(codes: Sequence[Layer] | str, config: NetworkConfig | None = None) -> Profile:
    """Build the network for ``codes`` and profile it."""
    block = nsc.as_block(codes, sys.maxsize)
    network = build(block, config)
    return profile_network(network, block, network.config)
