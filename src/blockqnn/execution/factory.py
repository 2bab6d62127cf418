"""The one way to build the executor a run asks for: :func:`make_executor`.

An :class:`ExecutorSpec` is the plain description (what the CLI's execution options and
the experiments give); :data:`EXECUTORS` maps the kind of address (``local`` or a Dask
scheme) to the code that builds it. Executors that need Dask are imported only when built.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from blockqnn.config import SearchConfig, make_evaluator
from blockqnn.evaluation import Evaluator
from blockqnn.execution.base import Executor


@dataclass(frozen=True)
class ExecutorSpec:
    """Where and how evaluations run."""

    address: str = "local"  #: "local" (this machine) or ``dask://HOST:PORT``, ``tcp://...``
    workers: int | None = None  #: local processes; 0 runs in this process; None: see below
    threads: int = 1  #: torch threads per worker
    gpus: Sequence[int] | None = None  #: local: GPU ids shared out among the workers
    device: str = "auto"  #: Dask: "cuda" asks each task for one ``GPU`` resource
    prefetch: int = 0  #: Dask: evaluations queued ahead per worker slot

    @property
    def kind(self) -> str:
        """The :data:`EXECUTORS` key of this address."""
        return "local" if self.address == "local" else "dask"


def _local(spec: ExecutorSpec, evaluator: Evaluator, config: SearchConfig) -> Executor:
    """``workers`` processes; None means one for training spaces and none (in-process) for
    tabular ones, whose evaluations are table look-ups."""
    workers = spec.workers if spec.workers is not None else int(config.space == "nsc")
    if workers < 1:
        from blockqnn.execution.inline import InlineExecutor

        return InlineExecutor(evaluator)
    from blockqnn.execution.local import ProcessExecutor

    return ProcessExecutor(evaluator, workers, threads=spec.threads, gpus=spec.gpus)


def _dask(spec: ExecutorSpec, evaluator: Evaluator, config: SearchConfig) -> Executor:
    from blockqnn.execution.dask_cluster import DaskExecutor

    gpu = {"GPU": 1} if spec.device == "cuda" else None
    return DaskExecutor(spec.address, evaluator, resources=gpu, prefetch=spec.prefetch)


#: Executor builders by kind of address.
EXECUTORS: dict[str, Callable[[ExecutorSpec, Evaluator, SearchConfig], Executor]] = {
    "local": _local,
    "dask": _dask,
}


def make_executor(spec: ExecutorSpec, config: SearchConfig) -> Executor:
    """The executor ``spec`` describes, evaluating with ``config``'s evaluator."""
    return EXECUTORS[spec.kind](spec, make_evaluator(config), config)
