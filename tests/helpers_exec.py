"""Evaluators for the executor tests; a module of their own so spawned workers import them."""

from __future__ import annotations

import os
import time
from pathlib import Path

from blockqnn.evaluation import Result
from blockqnn.tabular import TabularEvaluator


class ScriptEvaluator:
    """Does what the architecture text says; ``accuracy`` is the text's length.

    ``sleep S`` sleeps S seconds; ``exit N`` calls ``os._exit(N)``; ``raise MSG`` raises
    ``RuntimeError(MSG)``; ``unpicklable`` puts a lambda in ``extra``; ``hang FILE`` writes
    its pid to FILE and sleeps 60 s; ``env`` returns the thread/GPU environment in
    ``extra``; ``torch`` reports torch's thread count and then sets it to 3 (the executor
    must set it back before the next evaluation).
    """

    def evaluate(self, arch: str) -> Result:
        verb, _, arg = arch.partition(" ")
        extra: dict[str, object] = {"pid": os.getpid()}
        if verb == "sleep":
            time.sleep(float(arg))
        elif verb == "exit":
            os._exit(int(arg))
        elif verb == "raise":
            raise RuntimeError(arg)
        elif verb == "hang":
            Path(arg).write_text(str(os.getpid()))
            time.sleep(60)
        elif verb == "unpicklable":
            extra["callback"] = lambda: None
        elif verb == "env":
            names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES")
            extra.update({name: os.environ.get(name) for name in names})
        elif verb == "torch":
            import torch

            extra["threads"] = torch.get_num_threads()
            torch.set_num_threads(3)
        else:
            raise ValueError(f"unknown script {arch!r}")
        return Result(accuracy=float(len(arch)), extra=extra)


class Unloadable:
    """An evaluator that pickles but cannot be unpickled (as if its module were missing)."""

    def __init__(self) -> None:
        self.state = 1

    def __setstate__(self, state: dict[str, object]) -> None:
        raise ImportError("no module named 'elsewhere'")

    def evaluate(self, arch: str) -> Result:
        return Result(accuracy=0.0)


class DyingTabular:
    """A table lookup whose worker dies (``os._exit(3)``) on one architecture.

    The first evaluation started anywhere claims that architecture by creating ``marker``
    (atomically) and writing the architecture into it. With ``always`` False only that first
    evaluation dies, so a retry succeeds; with ``always`` True every evaluation of it dies.
    """

    def __init__(self, table: str, marker: str, always: bool) -> None:
        self.inner = TabularEvaluator(table, "valid-accuracy")
        self.marker, self.always = marker, always

    def evaluate(self, arch: str) -> Result:
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            if self.always and Path(self.marker).read_text() == arch:
                os._exit(3)
            return self.inner.evaluate(arch)
        with os.fdopen(fd, "w") as file:
            file.write(arch)
        os._exit(3)


class SlowStart(ScriptEvaluator):
    """A :class:`ScriptEvaluator` whose unpickling, a worker's start-up, takes ``delay``
    seconds (as importing torch does on a loaded machine)."""

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def __setstate__(self, state: dict[str, float]) -> None:
        self.__dict__.update(state)
        time.sleep(self.delay)
