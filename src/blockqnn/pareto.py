"""Several objectives at once: named objectives, the Pareto front and its hypervolume.

An objective names a metric and whether more is better. ``accuracy``, ``test_accuracy``
and ``reward`` are maximised; every other metric (``latency_ms``, ``flops``, ``params``,
...) is a cost and minimised. ``latency`` is short for ``latency_ms``.

Internally every objective is turned into a value to maximise (costs are negated), so
"dominates" means: at least as good in every objective and better in one.

This module is pure Python: it never imports torch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from blockqnn.reward import Term

#: Metrics where more is better; every other metric is minimised.
MAXIMISED = frozenset({"accuracy", "test_accuracy", "reward"})
#: Short names accepted for metrics in ``--objectives``.
ALIASES = {"latency": "latency_ms", "acc": "accuracy"}

T = TypeVar("T")


@dataclass(frozen=True)
class Objective:
    """One objective: a metric name and its direction."""

    metric: str
    maximise: bool

    @classmethod
    def named(cls, name: str) -> Objective:
        """The objective for ``name`` (an alias or any metric name)."""
        metric = ALIASES.get(name, name)
        return cls(metric, metric in MAXIMISED)

    def gain(self, value: float) -> float:
        """``value`` as a quantity to maximise."""
        return value if self.maximise else -value


def objectives(names: Iterable[str]) -> tuple[Objective, ...]:
    """The objectives ``names`` list (ValueError for fewer than two or a repeated one)."""
    found = tuple(Objective.named(n.strip()) for n in names)
    metrics = [o.metric for o in found]
    if len(found) < 2 or len(set(metrics)) != len(metrics):
        raise ValueError(f"need two or more different objectives, got {metrics}")
    return found


def gains(metrics: Mapping[str, float], objs: Sequence[Objective]) -> tuple[float, ...] | None:
    """The objective vector of named ``metrics`` to maximise, or None if one is missing."""
    values = [metrics.get(o.metric) for o in objs]
    if any(v is None for v in values):
        return None
    return tuple(o.gain(float(v)) for o, v in zip(objs, values, strict=True))


def steering_terms(
    objs: Sequence[Objective], seed: int, iteration: int, max_weight: float
) -> dict[str, Term]:
    """Reward terms steering a scalar-reward agent along the front: for each minimised
    objective, a weight drawn uniformly in ``[0, max_weight]``, the same for every
    candidate of one iteration (a pure function of ``seed`` and ``iteration``). Low weights
    favour the accurate end of the front, high ones the cheap end."""
    terms = {}
    for o in objs:
        if not o.maximise:
            digest = hashlib.sha256(f"{seed}|{iteration}|{o.metric}".encode()).digest()
            terms[o.metric] = Term(max_weight * int.from_bytes(digest[:8], "big") / 2**64)
    return terms


def steered_reward_text(objs: Sequence[Objective], max_weight: float) -> str:
    """What a reward is in a run steered along the front of ``objs`` (one line, shown by
    ``show`` and the report): not comparable across iterations, so not the ranking."""
    costs = [o.metric for o in objs if not o.maximise]
    penalty = " + ".join(f"w·ln({metric})" for metric in costs) or "nothing"
    return (
        f"steered: accuracy − {penalty} with w drawn in [0, {max_weight:g}] afresh each "
        f"iteration (compares candidates of one iteration only; the run ranks by the "
        f"Pareto front of {', '.join(o.metric for o in objs)}, then accuracy)"
    )


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """``a`` is at least as good as ``b`` everywhere and better somewhere (maximising)."""
    return all(x >= y for x, y in zip(a, b, strict=True)) and tuple(a) != tuple(b)


def front(items: Sequence[T], vector: Callable[[T], Sequence[float] | None]) -> list[T]:
    """The items no other item dominates, in their given order; items whose ``vector`` is
    None are left out. Equal vectors are all kept."""
    valued = [(i, tuple(v)) for i, item in enumerate(items) if (v := vector(item)) is not None]
    kept: list[tuple[int, tuple[float, ...]]] = []
    # in decreasing lexicographic order nothing later dominates anything earlier, so one
    # pass checking each vector against the front so far is enough: O(n x front)
    for index, v in sorted(valued, key=lambda pair: pair[1], reverse=True):
        if not any(dominates(other, v) for _, other in kept):
            kept.append((index, v))
    chosen = {index for index, _ in kept}
    return [item for i, item in enumerate(items) if i in chosen]


def hypervolume(points: Iterable[Sequence[float]], reference: Sequence[float]) -> float:
    """The volume dominated by ``points`` and bounded below by ``reference`` (maximising;
    points not above the reference in every objective add nothing). Exact, by slicing the
    last objective (fine for the fronts of a search: tens of points, two or three
    objectives)."""
    inside = [tuple(p) for p in points if all(x > r for x, r in zip(p, reference, strict=True))]
    return _slice(inside, tuple(reference))


def _slice(points: list[tuple[float, ...]], reference: tuple[float, ...]) -> float:
    if not points:
        return 0.0
    if len(reference) == 1:
        return max(p[0] for p in points) - reference[0]
    levels = sorted({p[-1] for p in points}, reverse=True)
    volume = 0.0
    for upper, lower in zip(levels, [*levels[1:], reference[-1]], strict=True):
        above = [p[:-1] for p in points if p[-1] >= upper]
        volume += (upper - lower) * _slice(above, reference[:-1])
    return volume
