"""Multi-fidelity evaluation: rungs, the promotion rule and the reward calibration.

A search with rungs evaluates every candidate first on a small budget (rung 0: a few
training epochs, or a cheap column of a benchmark table); a candidate whose reward at rung
``k`` is among the best ``1 / eta_k`` of all rewards measured at rung ``k`` so far is
*promoted*: it continues (from the state its rung's evaluation returned, which the master
keeps in the run store and sends with the next rung) up to the next rung's budget. The
last rung is the full early-stop budget. This is asynchronous successive halving (ASHA,
Li et al. 2018) in its stopping form (as Ray Tune's and Optuna's pruners):
the decision is taken once, when the rung's result arrives, so each candidate's fate is
final at once and the agent is told exactly one reward per candidate.

``eta_k`` defaults to the ratio of consecutive rung budgets, ``budget[k+1] / budget[k]``:
each rung then costs about as much as the one below, the principle of successive halving
(rungs ``1, 3, 9`` epochs give ASHA's ``eta = 3``; a 12-epoch and a 200-epoch table column
promote the best 6%).

One reward scale: a candidate stopped at rung ``k < top`` is told an *estimated* full-budget
reward. Its accuracy is mapped to the top rung by :func:`fit_map`, fitted on the candidates
measured at both rungs; the reward's FLOPs and density terms do not depend on the budget, so
the estimated reward is the rung's reward plus the accuracy's estimated change.

:class:`Ladder` holds the rung state of a run, rebuilt from the run store at any time (so a
resumed run takes the same decisions). Pure Python: never imports torch.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from blockqnn.evaluation import Step
from blockqnn.store import RungResult

logger = logging.getLogger(__name__)

#: Pairs needed before the calibration fits a slope (fewer: a mean offset).
MIN_PAIRS_FOR_SLOPE = 5
#: ASHA's reduction factor, the default of :func:`geometric_rungs`.
DEFAULT_ETA = 3.0


@dataclass(frozen=True)
class Rungs:
    """The rung budgets (increasing; the last is the full budget) and the promotion factor.

    ``eta`` None: rung ``k`` promotes ``budgets[k] / budgets[k+1]`` of its candidates
    (equal cost per rung); a number: ``1 / eta`` at every rung. ValueError for fewer than
    two budgets, budgets not strictly increasing and positive, or ``eta <= 1``.
    """

    budgets: tuple[float, ...]
    eta: float | None = None

    def __post_init__(self) -> None:
        budgets = tuple(float(b) for b in self.budgets)
        object.__setattr__(self, "budgets", budgets)
        if len(budgets) < 2:
            raise ValueError(f"rungs need at least two budgets, got {list(budgets)}")
        increasing = all(a < b for a, b in itertools.pairwise(budgets))
        if not (budgets[0] > 0 and increasing and math.isfinite(budgets[-1])):
            raise ValueError(
                f"rung budgets must be finite, positive and increasing, got {list(budgets)}"
            )
        if self.eta is not None and not 1 < self.eta < math.inf:
            raise ValueError(f"eta must be > 1, got {self.eta}")

    @property
    def top(self) -> int:
        """Index of the last (full-budget) rung."""
        return len(self.budgets) - 1

    def reduction(self, rung: int) -> float:
        """``eta_k``: rung ``rung`` promotes ``1 / eta_k`` of its candidates."""
        if self.eta is not None:
            return self.eta
        return self.budgets[rung + 1] / self.budgets[rung]

    def promotes(self, rung: int, value: float, seen: Sequence[float]) -> bool:
        """Whether ``value`` measured at rung ``rung < top`` is promoted.

        ``seen`` holds every value measured at that rung so far, ``value`` included, in
        ascending order. Promoted: ``value`` is among the best ``max(1, floor(n / eta_k))``
        of the ``n`` values (ties promote), so the first result is always promoted.
        """
        if not 0 <= rung < self.top:
            raise ValueError(f"rung {rung} has no rung above it (top is {self.top})")
        places = max(1, math.floor(len(seen) / self.reduction(rung) + 1e-9))
        return value >= seen[len(seen) - places]


def expected_cost(rungs: Rungs) -> float:
    """The mean budget one candidate costs when each rung promotes its share: the first
    rung's budget plus each higher rung's increment times the share that reaches it."""
    cost, share = rungs.budgets[0], 1.0
    for rung in range(1, rungs.top + 1):
        share /= rungs.reduction(rung - 1)
        cost += share * (rungs.budgets[rung] - rungs.budgets[rung - 1])
    return cost


def geometric_rungs(full: float, eta: float = DEFAULT_ETA, minimum: float = 1.0) -> Rungs:
    """ASHA's rungs for a full budget of ``full``: ``full / eta**k`` down to ``minimum``,
    rounded to whole units (epochs). ValueError when only one rung fits."""
    budgets = {round(full)}
    level = full / eta
    while round(level) >= minimum:
        budgets.add(round(level))
        level /= eta
    return Rungs(tuple(sorted(budgets)))


@dataclass(frozen=True)
class LinearMap:
    """``y = slope * x + offset``: low-rung accuracy to full-budget accuracy."""

    slope: float = 1.0
    offset: float = 0.0
    pairs: int = 0  #: how many pairs it was fitted on

    def __call__(self, x: float) -> float:
        return self.slope * x + self.offset


def fit_map(
    pairs: Sequence[tuple[float, float]], min_pairs: int = MIN_PAIRS_FOR_SLOPE
) -> LinearMap:
    """The least-squares line through ``(low, full)`` accuracy pairs.

    No pair: the identity. Fewer than ``min_pairs``, no spread in ``low``, or a fitted
    slope that is not positive (it would reverse the ranking the agent learns from): the
    identity plus the mean difference ``full - low``.
    """
    if not pairs:
        return LinearMap()
    xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
    offset_only = LinearMap(1.0, statistics.fmean(y - x for x, y in pairs), len(pairs))
    if len(pairs) < min_pairs or max(xs) == min(xs):
        return offset_only
    slope, intercept = statistics.linear_regression(xs, ys)
    if not slope > 0:
        return offset_only
    return LinearMap(slope, intercept, len(pairs))


class Fate(str, Enum):
    """What becomes of a candidate after a rung's result."""

    PROMOTED = "promoted"  #: continues to the next rung
    STOPPED = "stopped"  #: final below the top rung: the agent is told an estimate
    MEASURED = "measured"  #: final at the top rung: the agent is told the measurement


@dataclass
class Ladder:
    """The rung state of one run: rewards seen per rung and each candidate's rungs.

    Contract: the search loop calls :meth:`step` to submit a candidate, :meth:`decide`
    with its result, then records the result in the store and calls :meth:`record`.
    :meth:`from_results` rebuilds the same state from the stored rung results.
    """

    rungs: Rungs
    _seen: list[list[float]] = field(default_factory=list)  # per rung, ascending
    _done: dict[int, dict[int, RungResult]] = field(default_factory=dict)  # cid -> rung -> r

    def __post_init__(self) -> None:
        self._seen = [[] for _ in self.rungs.budgets]

    @classmethod
    def from_results(cls, rungs: Rungs, results: Iterable[RungResult]) -> Ladder:
        """A ladder that has recorded ``results`` (e.g. ``store.rung_results()``)."""
        ladder = cls(rungs)
        for result in results:
            ladder.record(result)
        return ladder

    def next_rung(self, cid: int) -> int:
        """The rung candidate ``cid`` is (to be) evaluated at: one above its last result."""
        return len(self._done.get(cid, {}))

    def step(self, cid: int, state: bytes | None) -> Step:
        """What to ask the evaluator for candidate ``cid``'s next rung; ``state`` is what
        the evaluation of its rung below returned to continue from (None: nothing)."""
        rung = self.next_rung(cid)
        start = self.rungs.budgets[rung - 1] if rung else 0.0
        last = rung == self.rungs.top
        return Step(rung, self.rungs.budgets[rung], start, state, last)

    def decide(self, rung: int, reward: float) -> Fate:
        """The fate of a result with ``reward`` at ``rung`` (not yet recorded)."""
        if rung == self.rungs.top:
            return Fate.MEASURED
        seen = list(self._seen[rung])
        bisect.insort(seen, reward)
        return Fate.PROMOTED if self.rungs.promotes(rung, reward, seen) else Fate.STOPPED

    def record(self, result: RungResult) -> None:
        """Count a rung result (after it is stored)."""
        bisect.insort(self._seen[result.rung], result.reward)
        self._done.setdefault(result.cid, {})[result.rung] = result

    def calibration(self, rung: int) -> LinearMap:
        """The map from rung ``rung``'s accuracy to the top rung's, fitted on candidates
        measured at both."""
        top = self.rungs.top
        pairs = [
            (done[rung].accuracy, done[top].accuracy)
            for done in self._done.values()
            if rung in done and top in done
        ]
        return fit_map(pairs)

    def estimate(self, result: RungResult) -> tuple[float, float]:
        """The estimated full-budget ``(accuracy, reward)`` of a result below the top."""
        accuracy = self.calibration(result.rung)(result.accuracy)
        return accuracy, result.reward + accuracy - result.accuracy
