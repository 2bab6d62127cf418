"""Epsilon schedules: how much a strategy explores at each iteration.

The paper (Table 2) holds epsilon at 1.0, 0.9, ..., 0.1 for 95, 7, 7, 7, 10, 10, 10, 10, 10
and 12 iterations (178 in all) of 64 blocks. A smaller or larger search keeps these
proportions (docs/design.md section 3) via :meth:`EpsilonSchedule.scaled`.

Pure Python: never imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

#: Iterations per epsilon level in the paper's Table 2.
PAPER_COUNTS: tuple[int, ...] = (95, 7, 7, 7, 10, 10, 10, 10, 10, 12)
#: The paper's epsilon levels, from pure exploration to mostly exploitation.
PAPER_EPSILONS: tuple[float, ...] = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1)


@dataclass(frozen=True)
class EpsilonSchedule:
    """Epsilon held at ``epsilons[i]`` for ``counts[i]`` iterations, level after level.

    The defaults are the paper's schedule. Beyond the last iteration the last epsilon
    holds.
    """

    counts: tuple[int, ...] = PAPER_COUNTS
    epsilons: tuple[float, ...] = PAPER_EPSILONS

    def __post_init__(self) -> None:
        object.__setattr__(self, "counts", tuple(int(c) for c in self.counts))
        object.__setattr__(self, "epsilons", tuple(float(e) for e in self.epsilons))
        if not self.counts or len(self.counts) != len(self.epsilons):
            raise ValueError("counts and epsilons must be non-empty and of equal length")
        if min(self.counts) < 0 or sum(self.counts) < 1:
            raise ValueError(f"counts must be >= 0 with a positive sum, got {self.counts}")
        if not all(0.0 <= e <= 1.0 for e in self.epsilons):
            raise ValueError(f"epsilons must lie in [0, 1], got {self.epsilons}")

    @classmethod
    def constant(cls, epsilon: float) -> EpsilonSchedule:
        """One level held forever (``constant(1.0)`` is random search)."""
        return cls(counts=(1,), epsilons=(epsilon,))

    @property
    def iterations(self) -> int:
        """The number of iterations the levels cover."""
        return sum(self.counts)

    def epsilon(self, iteration: int) -> float:
        """The epsilon of 0-based ``iteration`` (the last epsilon beyond the end)."""
        if iteration < 0:
            raise ValueError(f"iteration must be >= 0, got {iteration}")
        end = 0
        for count, eps in zip(self.counts, self.epsilons, strict=True):
            end += count
            if iteration < end:
                return eps
        return self.epsilons[-1]

    def scaled(self, iterations: int) -> EpsilonSchedule:
        """The same levels stretched or squeezed to exactly ``iterations`` iterations.

        Counts are the proportional shares rounded by largest remainder (ties go to the
        earlier level), so each differs from its exact share by less than one whenever
        every share is at least one. When ``iterations`` is at least the number of levels
        with a positive count, each of those levels keeps at least one iteration (taken
        from the largest level); with fewer iterations the smallest shares get none.
        ``scaled(self.iterations)`` returns the same counts.
        """
        if iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {iterations}")
        counts = _largest_remainder(self.counts, iterations)
        if iterations >= sum(1 for c in self.counts if c > 0):
            counts = _fill_empty_levels(counts, self.counts)
        return EpsilonSchedule(counts=tuple(counts), epsilons=self.epsilons)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form: ``{"counts": [...], "epsilons": [...]}``."""
        return {"counts": list(self.counts), "epsilons": list(self.epsilons)}


#: Share of the budget the default schedule spends at epsilon = 1 (the paper: 95 / 178).
DEFAULT_EXPLORE_SHARE = 0.25


def budget_schedule(explore: float = DEFAULT_EXPLORE_SHARE) -> EpsilonSchedule:
    """The paper's stages with the epsilon = 1 stage resized to ``explore`` of the total.

    The later stages (0.9 down to 0.1) keep the paper's proportions among themselves
    (7, 7, 7, 10, 10, 10, 10, 10, 12). ``explore`` lies in (0, 1).
    """
    if not 0.0 < explore < 1.0:
        raise ValueError(f"explore must lie in (0, 1), got {explore}")
    share = Fraction(explore).limit_denominator(1000)
    later = PAPER_COUNTS[1:]
    first = share.numerator * sum(later)
    rest = share.denominator - share.numerator
    return EpsilonSchedule(counts=(first, *(c * rest for c in later)), epsilons=PAPER_EPSILONS)


def iterations_for(budget: int, batch: int) -> int:
    """Iterations a budget of evaluations spans in batches of ``batch``: ceil(budget / batch)."""
    if budget < 1 or batch < 1:
        raise ValueError(f"budget and batch must be >= 1, got budget={budget}, batch={batch}")
    return -(-budget // batch)


def _largest_remainder(weights: tuple[int, ...], total: int) -> list[int]:
    """Integer shares of ``total`` proportional to ``weights``, summing exactly to ``total``."""
    whole = sum(weights)
    counts = [total * w // whole for w in weights]
    remainders = [total * w % whole for w in weights]
    order = sorted(range(len(weights)), key=lambda i: -remainders[i])
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _fill_empty_levels(counts: list[int], weights: tuple[int, ...]) -> list[int]:
    """Give every level of positive weight at least one iteration, taken from the largest."""
    counts = list(counts)
    for i, weight in enumerate(weights):
        if weight > 0 and counts[i] == 0:
            donor = counts.index(max(counts))
            counts[donor] -= 1
            counts[i] = 1
    return counts
