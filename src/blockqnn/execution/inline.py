"""Evaluations in the calling process, one at a time (tabular search, tests, debugging)."""

from __future__ import annotations

from collections import deque

from blockqnn.evaluation import Evaluator
from blockqnn.execution.base import ClosingExecutor, Outcome, evaluate_safely


class InlineExecutor(ClosingExecutor):
    """Evaluates each candidate when :meth:`wait` is called, in submission order."""

    slots = 1

    def __init__(self, evaluator: Evaluator) -> None:
        self.evaluator = evaluator
        self._queue: deque[tuple[int, str]] = deque()

    def submit(self, cid: int, arch: str) -> None:
        self._queue.append((cid, arch))

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        if not self._queue:
            return []
        cid, arch = self._queue.popleft()
        return [evaluate_safely(self.evaluator, cid, arch, "inline")]

    def close(self) -> None:
        self._queue.clear()
