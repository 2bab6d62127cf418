"""The redefined reward of the paper's Eq. (7), from stored parts.

``reward = accuracy - mu * ln(GFLOPs) - rho * ln(density)`` with accuracy in percent
(docs/design.md section 4). With ``mu = rho = 0`` the reward is plain accuracy. A missing
FLOPs or density figure contributes nothing (tabular spaces may lack them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from blockqnn.evaluation import Result


@dataclass(frozen=True)
class RewardConfig:
    mu: float = 1.0  #: weight of ln(GFLOPs)
    rho: float = 8.0  #: weight of ln(density)

    def __post_init__(self) -> None:
        if self.mu < 0 or self.rho < 0:
            raise ValueError(f"mu and rho must be non-negative, got mu={self.mu}, rho={self.rho}")


def reward(
    accuracy: float, flops: float | None, density: float | None, config: RewardConfig
) -> float:
    """The reward in percent points. ``flops`` in GFLOPs; both must be positive if given."""
    value = accuracy
    if config.mu and flops is not None:
        if flops <= 0:
            raise ValueError(f"FLOPs must be positive to take a log, got {flops}")
        value -= config.mu * math.log(flops)
    if config.rho and density is not None:
        if density <= 0:
            raise ValueError(f"density must be positive to take a log, got {density}")
        value -= config.rho * math.log(density)
    return value


def reward_of(result: Result, config: RewardConfig) -> float:
    """The reward of an evaluation result."""
    return reward(result.accuracy, result.flops, result.density, config)
