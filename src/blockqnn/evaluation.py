"""The evaluator contract: what a candidate's evaluation returns, as plain data.

An evaluator turns an architecture (its text form, so it travels to any process or
machine) into a :class:`Result`. Evaluators are picklable plain configurations; they run
inside worker processes. Raising an exception marks the candidate failed; it never stops
the search.

This module is pure Python: it never imports torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Result:
    """What one evaluation measured. Accuracies in percent, FLOPs in GFLOPs."""

    accuracy: float  #: validation accuracy (the search signal), percent
    flops: float | None = None  #: forward GFLOPs of the whole network for one image
    params: int | None = None  #: trainable parameters
    density: float | None = None  #: edges / nodes of the block DAG
    test_accuracy: float | None = None  #: held-out test accuracy, when the evaluator has one
    cost_s: float = 0.0  #: seconds the evaluation took (or the table's recorded cost)
    extra: dict[str, Any] = field(default_factory=dict)  #: evaluator-specific details
    #: per epoch: ``{"epoch": e, "val_accuracy": percent, "val_loss": loss or None}``
    curve: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        """Inverse of :meth:`to_dict`; ignores unknown keys."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass(frozen=True)
class Step:
    """One rung of a multi-fidelity evaluation (see :mod:`blockqnn.fidelity`).

    Evaluate up to ``budget`` (epochs, or a table's rung), continuing from ``start``
    (the budget already spent, whose state the evaluator saved at ``state``, a file path;
    with no usable state there, it starts again from nothing). ``last`` marks the top rung,
    after which no state need be kept.
    """

    rung: int
    budget: float
    start: float = 0.0
    state: str | None = None
    last: bool = False


class EvaluationError(RuntimeError):
    """An evaluation that ran but could not produce a result (e.g. training diverged)."""


class Evaluator(Protocol):
    """Evaluates one architecture given in its space's text form.

    Contract: ``evaluate`` is called in a worker process (possibly on another machine), must
    be safe to call repeatedly in one process, and returns a :class:`Result` or raises.
    """

    def evaluate(self, arch: str) -> Result: ...


class RungEvaluator(Evaluator, Protocol):
    """An evaluator that can also evaluate rung by rung (multi-fidelity search).

    Contract: ``evaluate_rung(arch, step)`` returns the :class:`Result` measured at
    ``step.budget``; its ``cost_s`` is the cost of this step only. Evaluating the top rung
    rung by rung measures what ``evaluate`` measures (up to the evaluator's noise).
    """

    def evaluate_rung(self, arch: str, step: Step) -> Result: ...
