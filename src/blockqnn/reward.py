"""The scalar reward the agent learns from, read from an evaluation's named metrics.

``reward = metrics[signal] - sum(weight * ln(metrics[name] / reference))`` over the
configured penalty terms, in percent points. The paper's Eq. (7),
``accuracy - mu ln(GFLOPs) - rho ln(density)``, is the configuration
:meth:`RewardConfig.paper` (docs/design.md section 4); with no terms the reward is plain
accuracy. A term whose metric an evaluation lacks contributes nothing (tabular spaces
may lack FLOPs or density).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from blockqnn.evaluation import Result


@dataclass(frozen=True)
class Term:
    """One penalty ``weight * ln(value / reference)``; ``reference`` in the metric's unit."""

    weight: float
    reference: float = 1.0

    def __post_init__(self) -> None:
        if not 0 <= self.weight < math.inf:
            raise ValueError(f"a penalty weight must be finite and non-negative, got {self.weight}")
        if not 0 < self.reference < math.inf:
            raise ValueError(f"a reference value must be finite and positive, got {self.reference}")


@dataclass(frozen=True)
class RewardConfig:
    """Which metric is the signal and which metrics are penalised, by name."""

    signal: str = "accuracy"  #: the metric rewarded (percent)
    terms: Mapping[str, Term] = field(default_factory=dict)  #: penalties by metric name

    @classmethod
    def paper(
        cls, mu: float = 1.0, rho: float = 8.0, extra: Mapping[str, Term] | None = None
    ) -> RewardConfig:
        """Eq. (7): ``mu`` weighs ln(GFLOPs), ``rho`` ln(density); ``extra`` adds terms."""
        if mu < 0 or rho < 0:
            raise ValueError(f"mu and rho must be non-negative, got mu={mu}, rho={rho}")
        return cls(terms={"flops": Term(mu), "density": Term(rho), **(extra or {})})

    @staticmethod
    def terms_from_dict(data: Mapping[str, Mapping[str, Any]]) -> dict[str, Term]:
        """Terms from their JSON form ``{name: {"weight": w, "reference": r}}``."""
        return {name: Term(**spec) for name, spec in data.items()}


def reward(metrics: Mapping[str, float], config: RewardConfig) -> float:
    """The reward of named ``metrics`` in percent points.

    Raises ValueError when the signal is missing or a penalised metric is not positive
    (its log is undefined).
    """
    if config.signal not in metrics:
        raise ValueError(f"no {config.signal!r} metric to reward")
    value = float(metrics[config.signal])
    for name, term in config.terms.items():
        measured = metrics.get(name)
        if not term.weight or measured is None:
            continue
        if measured <= 0:
            raise ValueError(f"{name} must be positive to take a log, got {measured}")
        value -= term.weight * math.log(measured / term.reference)
    return value


def reward_of(result: Result, config: RewardConfig) -> float:
    """The reward of an evaluation result (all its named metrics)."""
    return reward(result.named(), config)
