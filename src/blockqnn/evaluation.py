"""The evaluator contract: what a candidate's evaluation returns, as plain data.

An evaluator turns an architecture (its text form, so it travels to any process or
machine) into a :class:`Result`. Evaluators are picklable plain configurations; they run
inside worker processes. Raising an exception marks the candidate failed; it never stops
the search.

This module is pure Python: it never imports torch.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

#: Metric names are identifiers such as ``flops`` or ``latency_ms`` (they key JSON and SQL).
METRIC_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
#: Metrics the training evaluator measures before training (its profile of the network).
PROFILE_METRICS = ("flops", "params", "density")
#: Metrics of the training evaluator's latency measurement (unless it is switched off).
LATENCY_METRICS = ("latency_ms", "latency_batch_ms")


@dataclass(frozen=True)
class Result:
    """What one evaluation measured: the search signal and any other named metrics.

    ``accuracy`` (validation accuracy, percent) is the signal every evaluator gives.
    ``metrics`` is open: each evaluator adds what it measures, by name, as plain numbers,
    and the run store, the reward, ``show``, ``export`` and the report take them as they
    come. Names in use: ``test_accuracy`` (percent), ``flops`` (forward GFLOPs of the
    network for one image), ``params`` (trainable parameters), ``density`` (edges / nodes
    of the block DAG), ``latency_ms`` and ``latency_batch_ms`` (inference milliseconds
    per image at batch 1 and at a throughput batch).
    """

    accuracy: float  #: validation accuracy (the search signal), percent
    metrics: dict[str, float] = field(default_factory=dict)  #: every other metric, by name
    cost_s: float = 0.0  #: seconds the evaluation took (or the table's recorded cost)
    extra: dict[str, Any] = field(default_factory=dict)  #: evaluator-specific details
    #: per epoch: ``{"epoch": e, "val_accuracy": percent, "val_loss": loss or None}``
    curve: list[dict[str, Any]] = field(default_factory=list)
    #: a rung below the top: what the next rung continues from (:attr:`Step.state`), as
    #: plain bytes (a training evaluator's: a torch file of tensors and plain data)
    state: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        """Check metric names (identifiers, not ``accuracy``) and values (real numbers)."""
        for name, value in self.metrics.items():
            if not isinstance(name, str) or not METRIC_NAME.match(name) or name == "accuracy":
                raise ValueError(f"invalid metric name {name!r}")
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ValueError(f"metric {name!r} must be a number, got {value!r}")

    @property
    def test_accuracy(self) -> float | None:
        """Held-out test accuracy in percent, when the evaluator has one."""
        return self.metrics.get("test_accuracy")

    def named(self) -> dict[str, float]:
        """Every metric by name, ``accuracy`` included."""
        return {"accuracy": self.accuracy, **self.metrics}

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-compatible but for the ``state`` bytes)."""
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
    (the budget already spent) with ``state``: the bytes the evaluation of the rung below
    returned as :attr:`Result.state` (with no usable state it starts again from
    nothing). The state travels with the step, so any worker on any machine can continue
    the candidate. ``last`` marks the top rung, after which no state is returned.
    """

    rung: int
    budget: float
    start: float = 0.0
    state: bytes | None = None
    last: bool = False


#: Column labels of metrics whose name lacks their unit (others: the name, ``_`` as spaces).
METRIC_LABELS = {
    "accuracy": "accuracy (%)",
    "test_accuracy": "test accuracy (%)",
    "flops": "GFLOPs",
    "latency_ms": "latency (ms)",
    "latency_batch_ms": "latency at batch (ms)",
    "cost_s": "cost (s)",
}


def metric_label(name: str) -> str:
    """The label of metric ``name`` in a table or chart, with its unit (``flops`` is
    ``GFLOPs``)."""
    return METRIC_LABELS.get(name, name.replace("_", " "))


def format_metric(value: float | None, name: str = "") -> str:
    """A metric value as every view shows it (``show``, the search summary, and the
    report's page, whose script applies the same rule): ``-`` when missing; whole numbers
    and values from 10,000 up rounded, with thousands separators (JSON, and so the page,
    cannot tell 3.0 from 3); ``flops`` (GFLOPs, often small) with four significant digits;
    other values with two decimals from 100 up and three below."""
    if value is None:
        return "-"
    if float(value).is_integer() or abs(value) >= 10_000:
        return f"{round(value):,}"
    if name == "flops" and value:
        return f"{value:.{max(0, 3 - math.floor(math.log10(abs(value))))}f}"
    return f"{value:.2f}" if abs(value) >= 100 else f"{value:.3f}"


class EvaluationError(RuntimeError):
    """An evaluation that ran but could not produce a result (e.g. training diverged)."""


#: How every constraint failure's message starts (the search recognises it by this text,
#: which is all that travels back from a worker).
CONSTRAINT_PREFIX = "constraint violated: "


class ConstraintViolation(EvaluationError):
    """A candidate over a limit (``--max-flops``, ``--max-latency-ms``, ...)."""


def check_limits(metrics: dict[str, float], limits: dict[str, float], when: str = "") -> None:
    """Raise :class:`ConstraintViolation` naming the first metric in ``metrics`` above its
    limit in ``limits`` (metric name -> largest allowed value); missing metrics pass."""
    for name, limit in limits.items():
        value = metrics.get(name)
        if value is not None and value > limit:
            suffix = f" ({when})" if when else ""
            raise ConstraintViolation(
                f"{CONSTRAINT_PREFIX}{name} {value:.4g} > {limit:.4g}{suffix}"
            )


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
