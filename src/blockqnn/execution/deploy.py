"""Clusters started by the search itself: ``blockqnn search --cluster FILE``.

A cluster spec file (YAML, JSON or TOML, by its suffix) names a deployer and its options::

    kind: slurm          # slurm | pbs (dask-jobqueue), local (dask-jobqueue's local job
                         # cluster: the job scripts run as processes here), kubernetes
                         # (dask-kubernetes' operator KubeCluster)
    minimum: 0           # adaptive scaling: fewest and most Dask workers
    maximum: 32
    options:             # the deployer's own arguments, passed as they are
      cores: 1
      processes: 1
      memory: 8GB
      walltime: "04:00:00"
      queue: gpu
      job_extra_directives: ["--gres=gpu:1"]

:func:`cluster_executor` starts the deployer's scheduler in this process, asks it to
scale adaptively between ``minimum`` and ``maximum`` workers, and returns a
:class:`ClusterExecutor`: the master keeps up to ``maximum`` candidates in flight, so
Dask's adaptive scaling sees them queued and submits jobs for them (and retires idle
workers when fewer remain); closing the executor stops every job. SLURM and PBS workers
get the environment the project recommends (:func:`~blockqnn.execution.dask_cluster.
worker_shell_environment`) in their job script's prologue and this Python as their
interpreter (unless ``options`` say otherwise); local jobs inherit this process's
environment.

The deployers are optional dependencies (``pip install 'blockqnn[cluster]'`` for
dask-jobqueue, ``pip install dask-kubernetes`` for Kubernetes), imported only here.
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blockqnn.errors import UserError
from blockqnn.evaluation import Evaluator, Step
from blockqnn.execution.base import ClosingExecutor, Outcome
from blockqnn.execution.dask_cluster import DaskExecutor, worker_shell_environment

logger = logging.getLogger(__name__)

#: Deployer kinds: the module and class that start each.
KINDS = {
    "slurm": ("dask_jobqueue", "SLURMCluster"),
    "pbs": ("dask_jobqueue", "PBSCluster"),
    "local": ("dask_jobqueue.local", "LocalCluster"),
    "kubernetes": ("dask_kubernetes.operator", "KubeCluster"),
}
_INSTALL = {
    "dask_jobqueue": "pip install 'blockqnn[cluster]'",
    "dask_jobqueue.local": "pip install 'blockqnn[cluster]'",
    "dask_kubernetes.operator": "pip install dask-kubernetes",
}


class ClusterSpecError(ValueError, UserError):
    """A cluster spec file that cannot be read or used; the message names the file and
    the field."""


@dataclass(frozen=True)
class ClusterSpec:
    """A cluster to start: the deployer ``kind``, its ``options`` and the adaptive range
    of workers."""

    kind: str
    minimum: int = 0
    maximum: int = 1
    options: dict[str, Any] = field(default_factory=dict)


def load_cluster_spec(path: str | Path) -> ClusterSpec:
    """The spec in ``path`` (``.yaml``/``.yml``, ``.json`` or ``.toml``); ClusterSpecError
    naming the file and the field for anything unreadable, unknown or out of range."""
    path = Path(path)
    data = _read(path)
    if not isinstance(data, dict):
        raise ClusterSpecError(f"{path}: a cluster spec is a mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - {"kind", "minimum", "maximum", "options"})
    if unknown:
        raise ClusterSpecError(f"{path}: unknown field(s) {', '.join(unknown)}")
    kind = data.get("kind")
    if kind not in KINDS:
        raise ClusterSpecError(f"{path}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    minimum, maximum = data.get("minimum", 0), data.get("maximum", 1)
    for name, value, least in (("minimum", minimum, 0), ("maximum", maximum, max(1, minimum))):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ClusterSpecError(f"{path}: {name} must be an integer >= {least}, got {value!r}")
    options = data.get("options", {})
    if not isinstance(options, dict):
        raise ClusterSpecError(f"{path}: options must be a mapping, got {type(options).__name__}")
    return ClusterSpec(kind, minimum, maximum, options)


def _read(path: Path) -> Any:
    """The file's data, parsed by its suffix."""
    suffix = path.suffix.lower()
    try:
        text = path.read_text()
    except OSError as exc:
        raise ClusterSpecError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    try:
        if suffix in (".yaml", ".yml"):
            import yaml  # a dependency of dask

            return yaml.safe_load(text)
        if suffix == ".json":
            return json.loads(text)
        if suffix == ".toml":
            import tomllib  # Python >= 3.11

            return tomllib.loads(text)
    except ImportError as exc:
        raise ClusterSpecError(f"{path}: cannot read {suffix} files here ({exc})") from None
    except Exception as exc:  # each parser has its own error class
        reason = str(exc).splitlines()[0]
        raise ClusterSpecError(f"{path}: not valid {suffix[1:]} ({reason})") from None
    raise ClusterSpecError(f"{path}: a cluster spec is .yaml, .yml, .json or .toml")


def start_cluster(spec: ClusterSpec, source: str = "cluster spec") -> Any:
    """The deployer's cluster, started, scaling adaptively in ``spec``'s range (its
    scheduler runs in this process). ClusterSpecError (naming ``source``) when the
    deployer is not installed or refuses the options."""
    module_name, class_name = KINDS[spec.kind]
    try:
        module = __import__(module_name, fromlist=[class_name])
    except ImportError:
        raise ClusterSpecError(
            f"{source}: kind {spec.kind} needs {module_name.split('.')[0]}: {_INSTALL[module_name]}"
        ) from None
    options = dict(spec.options)
    if spec.kind in ("slurm", "pbs"):  # a batch script (local jobs run without a shell)
        options.setdefault("python", sys.executable)
        prologue = [f"export {k}={shlex.quote(v)}" for k, v in worker_shell_environment().items()]
        options["job_script_prologue"] = prologue + list(options.get("job_script_prologue", []))
    try:
        cluster = getattr(module, class_name)(**options)
    except (TypeError, ValueError) as exc:
        reason = str(exc).splitlines()[0]
        raise ClusterSpecError(f"{source}: options: {reason}") from None
    cluster.adapt(minimum=spec.minimum, maximum=spec.maximum)
    logger.info(
        "started a %s cluster at %s, %d-%d workers",
        spec.kind,
        cluster.scheduler_address,
        spec.minimum,
        spec.maximum,
    )
    return cluster


class ClusterExecutor(ClosingExecutor):
    """A :class:`DaskExecutor` on a cluster it started and owns.

    ``slots`` is at least the cluster's ``maximum`` workers: the candidates waiting in
    the scheduler are what adaptive scaling starts workers for. :meth:`close` stops the
    executor, then the cluster and all its jobs.
    """

    def __init__(self, cluster: Any, maximum: int, inner: DaskExecutor) -> None:
        self.cluster, self.maximum, self.inner = cluster, maximum, inner

    @property
    def slots(self) -> int:
        return max(self.inner.slots, self.maximum)

    def submit(self, cid: int, arch: str, step: Step | None = None) -> None:
        self.inner.submit(cid, arch, step)

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        return self.inner.wait(timeout)

    def close(self) -> None:
        try:
            self.inner.close()
        finally:
            self.cluster.close()
            logger.info("stopped the cluster at %s", self.cluster.scheduler_address)


def cluster_executor(
    spec: ClusterSpec, evaluator: Evaluator, source: str = "cluster spec", **options: Any
) -> ClusterExecutor:
    """Start the cluster ``spec`` describes and a :class:`DaskExecutor` on it
    (``options``: the DaskExecutor's); the cluster stops if the executor cannot start."""
    cluster = start_cluster(spec, source)
    try:
        inner = DaskExecutor(cluster.scheduler_address, evaluator, **options)
    except BaseException:
        cluster.close()
        raise
    return ClusterExecutor(cluster, spec.maximum, inner)
