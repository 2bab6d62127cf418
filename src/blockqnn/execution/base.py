"""The executor contract and the plain-data outcome of one evaluation."""

from __future__ import annotations

import pickle
import traceback
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from blockqnn.evaluation import Evaluator, Result, Step


@dataclass(frozen=True)
class Outcome:
    """How one submitted evaluation ended.

    Exactly one of ``result`` / ``error`` is set. ``lost`` marks an evaluation whose worker
    died (killed, out of memory): the candidate itself may be fine and is worth retrying.
    """

    cid: int
    result: Result | None = None
    error: str | None = None
    lost: bool = False
    worker: str | None = None

    def to_plain(self) -> dict[str, Any]:
        """The outcome of a worker as plain picklable data, for the trip to the master (the
        one conversion every executor uses). A result that cannot be pickled (e.g. an odd
        object in ``extra``) becomes its candidate's error."""
        data = {
            "cid": self.cid,
            "result": None if self.result is None else self.result.to_dict(),
            "error": self.error,
            "worker": self.worker,
        }
        try:
            pickle.dumps(data)
        except Exception as exc:
            data.update(result=None, error=f"the result could not be sent: {exc!r}")
        return data

    @classmethod
    def from_plain(cls, data: dict[str, Any]) -> Outcome:
        """Inverse of :meth:`to_plain`."""
        result = data["result"]
        return cls(
            data["cid"],
            result=None if result is None else Result.from_dict(result),
            error=data["error"],
            worker=data["worker"],
        )


class ExecutorLost(RuntimeError):
    """The executor itself is gone (e.g. the cluster's scheduler): nothing more can run."""


class Executor(Protocol):
    """Runs evaluations asynchronously.

    Contract: ``submit`` returns at once; every submitted ``cid`` later appears in exactly
    one :class:`Outcome` from ``wait`` (unless the executor is closed first or raises
    :class:`ExecutorLost`). ``slots`` is how many evaluations may usefully be in flight.
    Used from one thread (the search loop's).
    """

    slots: int

    def submit(self, cid: int, arch: str, step: Step | None = None) -> None:
        """Queue an evaluation: the whole of it, or with ``step`` one rung of it."""

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        """Block until at least one outcome is ready (or ``timeout`` seconds pass)."""

    def close(self) -> None:
        """Stop all work; outcomes not yet collected are dropped."""


_E = TypeVar("_E", bound="ClosingExecutor")


class ClosingExecutor:
    """Shared by the executors: ``with executor:`` closes it on the way out."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _E) -> _E:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _run(evaluator: Evaluator, arch: str, step: Step | None) -> Result:
    """The whole evaluation, or the rung ``step`` of it (a :class:`RungEvaluator`)."""
    if step is None:
        return evaluator.evaluate(arch)
    return evaluator.evaluate_rung(arch, step)  # type: ignore[attr-defined]


def evaluate_safely(
    evaluator: Evaluator, cid: int, arch: str, worker: str | None, step: Step | None = None
) -> Outcome:
    """Run one evaluation (one rung of it with ``step``), turning any exception into a
    failed :class:`Outcome`."""
    try:
        return Outcome(cid, result=_run(evaluator, arch, step), worker=worker)
    except Exception as exc:  # the search must survive any candidate's failure
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return Outcome(cid, error=detail, worker=worker)
