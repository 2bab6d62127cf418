"""Evaluators for the multi-fidelity tests; a module of its own so spawned workers import it."""

from __future__ import annotations

import os

from blockqnn.evaluation import Result, Step
from blockqnn.tabular import TabularEvaluator


class DiesAtRungOne:
    """The two-fidelity table, whose worker dies (``os._exit(3)``) the first time any
    candidate is evaluated at rung 1 (claimed by creating ``marker``)."""

    def __init__(self, inner: TabularEvaluator, marker: str) -> None:
        self.inner, self.marker = inner, marker

    def evaluate(self, arch: str) -> Result:
        return self.inner.evaluate(arch)

    def evaluate_rung(self, arch: str, step: Step) -> Result:
        if step.rung == 1:
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                os._exit(3)
        return self.inner.evaluate_rung(arch, step)
