"""Evaluations in the calling process, one at a time (tabular search, tests, debugging)."""

from __future__ import annotations

from collections import deque

from blockqnn.evaluation import Evaluator, Step
from blockqnn.execution.base import ClosingExecutor, Outcome, evaluate_safely


class InlineExecutor(ClosingExecutor):
    """Evaluates each candidate when :meth:`wait` is called, in submission order."""

    slots = 1

    def __init__(self, evaluator: Evaluator) -> None:
        self.evaluator = evaluator
        self._queue: deque[tuple[int, str, Step | None]] = deque()

    def submit(self, cid: int, arch: str, step: Step | None = None) -> None:
        self._queue.append((cid, arch, step))

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        if not self._queue:
            return []
        cid, arch, step = self._queue.popleft()
        # The master itself evaluates: no worker to name.
        return [evaluate_safely(self.evaluator, cid, arch, None, step)]

    def close(self) -> None:
        self._queue.clear()
