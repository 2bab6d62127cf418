"""The one way to build the executor a run asks for: :func:`make_executor`.

An :class:`ExecutorSpec` is the plain description of where evaluations run (what the
CLI's execution options and the experiments give); the run's stored configuration says
how they run (the evaluator, its torch threads and device). :data:`EXECUTORS` maps the
kind of address (``local`` or a Dask scheduler) to the code that builds it. Executors
that need Dask are imported only when built.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from blockqnn.config import SearchConfig, make_evaluator
from blockqnn.evaluation import Evaluator
from blockqnn.execution.base import Executor

#: Default evaluation timeout per epoch of a training evaluator's early-stop recipe.
TIMEOUT_PER_EPOCH_S = 1800.0
#: Default evaluation timeout of an evaluator that does not train (a table look-up).
TIMEOUT_LOOKUP_S = 600.0


@dataclass(frozen=True)
class ExecutorSpec:
    """Where evaluations run."""

    address: str = "local"  #: "local" (this machine) or a scheduler: ``dask://HOST:PORT``...
    workers: int | None = None  #: local processes; 0 runs in this process; None: see _local
    gpus: Sequence[int] | None = None  #: local: GPU ids shared out among the workers
    prefetch: int | str = "auto"  #: Dask: evaluations queued ahead per worker slot, or "auto"
    timeout_s: float | None = None  #: one evaluation's limit; None: :func:`default_timeout`
    #: a cluster spec file to start workers from (:mod:`blockqnn.execution.deploy`)
    cluster: str | None = None

    @property
    def kind(self) -> str:
        """The :data:`EXECUTORS` key of this address."""
        if self.cluster is not None:
            return "cluster"
        return "local" if self.address == "local" else "dask"


def executor_address(text: str) -> str:
    """``local``, or the normalised address of a Dask scheduler (see
    :func:`~blockqnn.execution.dask_cluster.scheduler_address`); ValueError otherwise."""
    if text == "local":
        return text
    from blockqnn.execution.dask_cluster import scheduler_address

    try:
        return scheduler_address(text)
    except ValueError as exc:
        raise ValueError(f"'local' or a scheduler address: {exc}") from None


def default_timeout(evaluator: Any) -> float:
    """:data:`TIMEOUT_PER_EPOCH_S` per epoch of a training evaluator's recipe, else
    :data:`TIMEOUT_LOOKUP_S`."""
    recipe = getattr(evaluator, "early_stop_recipe", None)
    return TIMEOUT_PER_EPOCH_S * recipe().epochs if recipe else TIMEOUT_LOOKUP_S


def _local(spec: ExecutorSpec, evaluator: Evaluator, config: SearchConfig) -> Executor:
    """``workers`` processes with the run's torch threads; None means one for training
    spaces and none (in-process) for tabular ones, whose evaluations are look-ups."""
    workers = spec.workers if spec.workers is not None else int(config.space == "nsc")
    if workers < 1:
        from blockqnn.execution.inline import InlineExecutor

        return InlineExecutor(evaluator)
    from blockqnn.execution.local import ProcessExecutor

    threads = config.evaluator.get("threads", 1)
    timeout = spec.timeout_s or default_timeout(evaluator)
    return ProcessExecutor(evaluator, workers, threads=threads, gpus=spec.gpus, timeout_s=timeout)


def _dask_options(spec: ExecutorSpec, evaluator: Evaluator, config: SearchConfig) -> dict:
    """The DaskExecutor's options: a run on CUDA asks each task for one ``GPU`` resource."""
    gpu = {"GPU": 1} if config.evaluator.get("device") == "cuda" else None
    timeout = spec.timeout_s or default_timeout(evaluator)
    return {"resources": gpu, "prefetch": spec.prefetch, "timeout_s": timeout}


def _dask(spec: ExecutorSpec, evaluator: Evaluator, config: SearchConfig) -> Executor:
    """A client of the scheduler (ExecutorLost when it cannot be reached)."""
    from blockqnn.execution.dask_cluster import DaskExecutor

    return DaskExecutor(spec.address, evaluator, **_dask_options(spec, evaluator, config))


def _cluster(spec: ExecutorSpec, evaluator: Evaluator, config: SearchConfig) -> Executor:
    """A cluster started from the spec file, scaling adaptively, stopped on close
    (ClusterSpecError for a bad file or a missing deployer)."""
    from blockqnn.execution.deploy import cluster_executor, load_cluster_spec

    cluster = load_cluster_spec(spec.cluster)
    options = _dask_options(spec, evaluator, config)
    return cluster_executor(cluster, evaluator, f"--cluster {spec.cluster}", **options)


#: Executor builders by kind of address.
EXECUTORS: dict[str, Callable[[ExecutorSpec, Evaluator, SearchConfig], Executor]] = {
    "local": _local,
    "dask": _dask,
    "cluster": _cluster,
}


def make_executor(spec: ExecutorSpec, config: SearchConfig) -> Executor:
    """The executor ``spec`` describes, evaluating with ``config``'s evaluator."""
    return EXECUTORS[spec.kind](spec, make_evaluator(config), config)
