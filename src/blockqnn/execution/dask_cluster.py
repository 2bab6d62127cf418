"""Evaluations on a Dask cluster: the paper's controller and compute nodes.

The master (the process that runs the search loop: agent and run database) connects a
``distributed.Client`` to a running scheduler (the controller's queue) and submits one Dask
task per candidate; the workers (compute nodes) evaluate them. What travels is plain data:
the evaluator is pickled once in the master and each task carries those bytes, the
candidate's id and its architecture text; a task returns a plain dict (the
:class:`~blockqnn.execution.base.Outcome` fields, the result as ``Result.to_dict()``).

Starting a cluster by hand (one scheduler, workers on every machine)::

    dask scheduler --host 10.0.0.1 --port 8786
    # CPU machine: one single-threaded worker process per core (worker_shell_environment)
    DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON='{"MALLOC_TRIM_THRESHOLD_": None}' \\
        dask worker tcp://10.0.0.1:8786 --nworkers 8 --nthreads 1
    # GPU machine: one worker per GPU, each seeing one device
    CUDA_VISIBLE_DEVICES=0 dask worker tcp://10.0.0.1:8786 --nthreads 1 --resources GPU=1

and then ``DaskExecutor("tcp://10.0.0.1:8786", evaluator)`` (with ``resources={"GPU": 1}``
for the GPU workers). :func:`worker_environment` explains the worker environment.

What happens when a piece fails:

- a worker dies (SIGKILL, out of memory): the scheduler reruns its task on another worker
  by itself; a task whose workers died more than ``distributed.scheduler.allowed-failures``
  times (the scheduler's setting, default 3) ends as ``KilledWorker``, reported as a *lost*
  outcome, which the search loop retries up to its ``max_attempts``;
- the scheduler goes away (crash, network): :class:`ExecutorLost` from the next call;
  everything finished is already in the run database, ``--resume`` continues;
- the master dies: the scheduler releases its tasks. Evaluations already running on
  workers run to their end (a thread cannot be interrupted) and their results are dropped,
  so a resumed master may wait for those workers first.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import logging
import pickle
import queue
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import CancelledError
from types import MappingProxyType
from typing import Any

import cloudpickle
import dask.config
import distributed

from blockqnn.evaluation import Evaluator, Step
from blockqnn.execution.base import ClosingExecutor, ExecutorLost, Outcome, evaluate_safely

logger = logging.getLogger(__name__)

#: Seconds :meth:`DaskExecutor.close` waits for the client to shut down.
CLOSE_TIMEOUT_S = 5.0
#: Seconds between the warnings that the cluster has no worker to run evaluations.
NO_WORKERS_WARNING_S = 30.0
#: Dask event topic on which a task reports its key when its evaluation begins.
STARTED_TOPIC = "blockqnn-evaluation-started"
#: A pickled evaluator larger than this is logged: every task carries it.
LARGE_EVALUATOR_BYTES = 1 << 20

#: The environment recommended for worker processes (``None``: unset). Dask's default
#: ``MALLOC_TRIM_THRESHOLD_=65536`` turns off glibc's adaptive mmap threshold, and torch
#: training then runs 1.5-1.7x slower (docs/design.md section 10; 1.5x measured again on a
#: small CNN), so it is unset. One BLAS/OpenMP thread per single-threaded worker process.
WORKER_ENVIRONMENT: Mapping[str, str | None] = MappingProxyType(
    {
        "MALLOC_TRIM_THRESHOLD_": None,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
    }
)


def worker_environment(threads: int = 1) -> dict[str, str | None]:
    """The recommended worker environment for ``threads`` compute threads per process.

    The dict is in the form of Dask's ``distributed.nanny.pre-spawn-environ`` setting:
    ``None`` means "unset". See :func:`worker_config` and :func:`worker_shell_environment`.
    """
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    environment = dict(WORKER_ENVIRONMENT)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        environment[name] = str(threads)
    return environment


def worker_config(threads: int = 1) -> dask.config.set:
    """Apply :func:`worker_environment` to nannies started in this process.

    Use it around creating a ``LocalCluster`` (``with worker_config(): LocalCluster(...)``;
    the nannies read the setting when they are created) or call it once to keep it set.
    Caveat: a nanny writes its pre-spawn environment into this process's ``os.environ``;
    one started earlier with Dask's defaults leaves ``MALLOC_TRIM_THRESHOLD_=65536`` there,
    which later worker processes inherit.
    """
    return dask.config.set({"distributed.nanny.pre-spawn-environ": worker_environment(threads)})


def worker_shell_environment(threads: int = 1) -> dict[str, str]:
    """Environment variables that apply :func:`worker_environment` to a ``dask worker``
    started from a shell (Dask reads its configuration from ``DASK_*`` variables)."""
    return {"DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON": repr(worker_environment(threads))}


def scheduler_address(address: str) -> str:
    """The ``distributed`` address of a scheduler given as ``tcp://HOST:PORT``,
    ``tls://HOST:PORT``, ``dask://HOST:PORT`` (read as tcp) or ``HOST:PORT``.

    Raises ValueError for anything else.
    """
    scheme, sep, rest = address.strip().partition("://")
    if not sep:
        scheme, rest = "tcp", address.strip()
    scheme = "tcp" if scheme == "dask" else scheme
    host, _, port = rest.rpartition(":")
    if scheme not in ("tcp", "tls") or not host or not port.isdigit():
        raise ValueError(f"not a Dask scheduler address: {address!r} (expected tcp://HOST:PORT)")
    return f"{scheme}://{rest}"


def worker_slots(worker: Mapping[str, Any], resources: Mapping[str, float]) -> int:
    """How many evaluations needing ``resources`` each a worker runs at once.

    ``worker`` is the scheduler's description of one worker (``nthreads``, ``resources``,
    ``status``); a worker that is not running (paused, closing) has none.
    """
    if worker.get("status", "running") != "running":
        return 0
    slots = int(worker["nthreads"])
    have = worker.get("resources") or {}
    for name, need in resources.items():
        slots = min(slots, int(have.get(name, 0) / need + 1e-9))
    return slots


@dataclasses.dataclass
class AutoPrefetch:
    """Chooses the prefetch depth (0 or 1) from what it measures.

    A worker without a queued evaluation waits, after each one, for the round trip through
    the master: the result's arrival, the master's processing (results queue behind each
    other when many workers finish together) and the next submission. That wait is
    measured as the *reaction*: from a task's end reaching the client to the submission
    that refills its slot, which does not depend on the prefetch in use. Its share of an
    evaluation is the share of the cluster that depth 0 would leave idle. Prefetch 1 is
    chosen when that share exceeds ``tolerance`` (1%), and kept until it falls below
    ``tolerance / hysteresis``: near the threshold the noisy estimate would otherwise
    switch the depth back and forth, and every switch down idles each worker for one
    round trip. Depth 0 (long evaluations) keeps the agent's proposals as fresh as
    possible. Before anything is measured the depth is 1. Both means are exponential,
    weight ``alpha``.
    """

    tolerance: float = 0.01
    hysteresis: float = 4.0
    alpha: float = 0.2
    reaction_s: float | None = None  #: mean reaction, seconds
    duration_s: float | None = None  #: mean evaluation time on the workers, seconds
    _depth: int = 1
    _freed: collections.deque[float] = dataclasses.field(default_factory=collections.deque)

    @property
    def depth(self) -> int:
        """The prefetch depth to use now."""
        return self._depth

    def ended(self, at: float, seconds: float | None) -> None:
        """A task ended at ``at`` (``time.monotonic()``) after ``seconds`` of evaluation."""
        self._freed.append(at)
        if seconds is not None:
            self.duration_s = self._mean(self.duration_s, seconds)
            self._choose()

    def submitted(self, at: float) -> None:
        """A task was submitted at ``at``: it refills the oldest freed slot, if any."""
        if self._freed:
            self.reaction_s = self._mean(self.reaction_s, at - self._freed.popleft())
            self._choose()

    def _choose(self) -> None:
        """The depth for the means measured so far (kept while one is missing)."""
        if self.reaction_s is None or self.duration_s is None:
            return
        share = self.reaction_s / self.duration_s
        if share > self.tolerance:
            self._depth = 1
        elif share < self.tolerance / self.hysteresis:
            self._depth = 0

    def waiting(self) -> None:
        """The master waits again: slots freed but not refilled stay empty (it had no
        proposal for them: the slots were full), so they measure nothing."""
        self._freed.clear()

    def _mean(self, mean: float | None, value: float) -> float:
        return value if mean is None else mean + self.alpha * (value - mean)


# --- worker side -------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _load_evaluator(blob: bytes) -> Evaluator:
    """The evaluator, unpickled once per worker process (and per run)."""
    return pickle.loads(blob)


def _limit_torch_threads(threads: int) -> None:
    """``torch.set_num_threads(threads)`` if torch is loaded (an evaluator may change it)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def run_evaluation(
    blob: bytes, cid: int, arch: str, torch_threads: int | None, step: Step | None = None
) -> dict[str, Any]:
    """The Dask task: evaluate candidate ``cid`` (one rung with ``step``) on this worker;
    returns plain data, with the evaluation's duration on the worker (``seconds``).

    With ``torch_threads`` set and torch loaded, torch runs that many threads (set before
    each evaluation; an evaluator that sets its own count wins). An evaluator that cannot
    be unpickled here returns ``{"broken": message}``: the cluster is misconfigured.
    """
    worker = distributed.get_worker().address
    try:
        evaluator = _load_evaluator(blob)
    except Exception as exc:
        return {"broken": f"worker {worker} cannot load the evaluator: {exc!r}"}
    if torch_threads is not None:
        _limit_torch_threads(torch_threads)
    this = distributed.get_worker()
    this.log_event(STARTED_TOPIC, this.get_current_task())  # the master's timeout starts
    start = time.perf_counter()
    outcome = evaluate_safely(evaluator, cid, arch, worker, step)
    return {**outcome.to_plain(), "seconds": time.perf_counter() - start}


# --- master side -------------------------------------------------------------------------


def _has_tls(security: distributed.Security) -> bool:
    """Whether ``security`` gives a client a TLS context (a CA file at least)."""
    return security.get_connection_args("client").get("ssl_context") is not None


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Silence logger ``name`` for a moment (Dask logs a traceback when a client whose
    scheduler is gone is closed while it tries to reconnect)."""
    log = logging.getLogger(name)
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


class DaskExecutor(ClosingExecutor):
    """Runs evaluations as tasks on the Dask cluster whose scheduler is at ``address``.

    ``evaluator`` must be a small picklable configuration (the evaluator contract); it is
    pickled once (cloudpickle, so classes of ``__main__`` travel too). Each task asks the
    scheduler for ``resources`` (e.g. ``{"GPU": 1}``: only workers started with
    ``--resources GPU=...`` run it). ``torch_threads`` (None: leave alone) is torch's thread
    count in the workers. Use one single-threaded worker process per core (the evaluator is
    shared by a process's threads).

    Contract (see :class:`~blockqnn.execution.base.Executor`):

    - ``slots`` is the cluster's capacity now: the running workers' threads or, with
      ``resources``, how many tasks their resources admit (:func:`worker_slots`), read from
      the scheduler at most every ``slots_ttl`` seconds, times ``1 + prefetch``. A worker
      that joins mid-run counts at the next read; with no worker it is 0, and the loop
      keeps calling :meth:`wait`. ``prefetch`` 1 keeps one evaluation queued per slot, so a
      worker starts its next one without waiting for the round trip through the master
      (tens of ms; it matters for evaluations of seconds): proposals are then made a little
      earlier, with a little less information. ``prefetch="auto"`` (the default) chooses
      0 or 1 as it goes, from the measured round trip and evaluation time
      (:class:`AutoPrefetch`).
    - :meth:`submit` returns at once (the scheduler queues tasks beyond the capacity).
    - :meth:`wait` blocks until an outcome is ready or ``timeout`` passes; with nothing in
      flight it sleeps ``timeout`` (no busy loop while there are no workers) and returns
      ``[]``. A task whose workers kept dying is a lost outcome (``KilledWorker``).
      While the cluster has no worker for the evaluations, a warning is logged every
      :data:`NO_WORKERS_WARNING_S` seconds.
    - With ``timeout_s``, an evaluation not ended that long after its worker began it (the
      task reports its start, after loading the evaluator; time queued does not count: a
      stalled worker) is a lost outcome naming the timeout; its task is cancelled and the worker
      running it restarted (by its nanny).
    - :class:`ExecutorLost` when the scheduler cannot be reached (at construction too, after
      ``connect_timeout`` seconds), when the connection to it drops, or when a worker
      cannot load the evaluator. In-flight evaluations are then dropped.

    Used from one thread. A context manager; :meth:`close` is idempotent.
    """

    def __init__(
        self,
        address: str,
        evaluator: Evaluator,
        *,
        resources: Mapping[str, float] | None = None,
        connect_timeout: float = 10.0,
        torch_threads: int | None = 1,
        prefetch: int | str = "auto",
        slots_ttl: float = 1.0,
        security: distributed.Security | None = None,
        timeout_s: float | None = None,
    ) -> None:
        self.address = scheduler_address(address)
        self.resources = dict(resources or {})
        if any(need <= 0 for need in self.resources.values()):
            raise ValueError(f"resource amounts must be positive, got {self.resources}")
        if prefetch != "auto" and not (isinstance(prefetch, int) and prefetch >= 0):
            raise ValueError(f"prefetch must be 'auto' or an integer >= 0, got {prefetch!r}")
        self._blob = cloudpickle.dumps(evaluator)
        if len(self._blob) > LARGE_EVALUATOR_BYTES:
            logger.warning(
                "the pickled evaluator is %d bytes; every task carries it", len(self._blob)
            )
        self._torch_threads = torch_threads
        self._timeout = connect_timeout
        self._slots_ttl = slots_ttl
        self.auto = AutoPrefetch() if prefetch == "auto" else None
        self._prefetch = 0 if self.auto is not None else prefetch
        if timeout_s is not None and not timeout_s > 0:
            raise ValueError(f"timeout_s must be positive or None, got {timeout_s}")
        self.timeout_s = timeout_s
        self._deadlines: dict[str, float] = {}  # task key -> monotonic time it must end by
        self._slots: tuple[float, int] | None = None  # (time read, capacity)
        self._inflight: dict[str, tuple[int, distributed.Future]] = {}
        self._done: queue.SimpleQueue[tuple[distributed.Future, float]] = queue.SimpleQueue()
        self._closed = False
        self._warned_at: float | None = None  # last "no workers" warning (monotonic)
        self._client = self._connect(security)
        self._started: queue.SimpleQueue[str] = queue.SimpleQueue()  # keys of begun tasks
        if timeout_s is not None:
            self._client.subscribe_topic(STARTED_TOPIC, lambda e: self._started.put(e[1]))

    # -- public API ---------------------------------------------------------------------

    @property
    def prefetch(self) -> int:
        """Evaluations queued ahead per worker slot now."""
        return self._prefetch if self.auto is None else self.auto.depth

    @property
    def slots(self) -> int:
        """Evaluations the cluster runs at once now (0 with no workers), times 1 + prefetch."""
        self._check_connected()
        now = time.monotonic()
        if self._slots is None or now - self._slots[0] >= self._slots_ttl:
            workers = self._scheduler_identity()["workers"].values()
            self._slots = (now, sum(worker_slots(w, self.resources) for w in workers))
        return self._slots[1] * (1 + self.prefetch)

    def submit(self, cid: int, arch: str, step: Step | None = None) -> None:
        """Queue the evaluation of candidate ``cid`` (one rung with ``step``) on the cluster."""
        if self._closed:
            raise RuntimeError("submit() on a closed DaskExecutor")
        self._check_connected()
        future = self._client.submit(
            run_evaluation,
            self._blob,
            cid,
            arch,
            self._torch_threads,
            step,
            key=f"blockqnn-eval-{cid}-{uuid.uuid4().hex[:8]}",
            pure=False,
            resources=self.resources or None,
        )
        self._inflight[future.key] = (cid, future)
        future.add_done_callback(self._ended)  # runs in Dask's callback thread
        if self.auto is not None:
            self.auto.submitted(time.monotonic())

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        """Outcomes of the evaluations that ended; ``[]`` if none within ``timeout`` s.

        With nothing in flight: sleeps ``timeout`` seconds (returns at once if None).
        """
        if self._closed:
            return []
        self._check_connected()
        if self.auto is not None:
            self.auto.waiting()
        if not self._inflight:
            self._warn_without_workers()
            time.sleep(timeout or 0.0)
            return []
        try:
            ended = [self._done.get(timeout=self._until_deadline(timeout))]
        except queue.Empty:
            self._check_connected()
            return self._expire()
        with contextlib.suppress(queue.Empty):
            while True:
                ended.append(self._done.get_nowait())
        return self._collect(ended) + self._expire()

    def close(self) -> None:
        """Disconnect from the scheduler, which then drops this executor's tasks."""
        if self._closed:
            return
        self._closed = True
        self._inflight.clear()
        lost = self._client.status != "running"
        try:
            with _quiet("distributed.client") if lost else contextlib.nullcontext():
                self._client.close(timeout=CLOSE_TIMEOUT_S)
        except Exception as exc:  # closing must not hide the error that led here
            logger.warning("closing the Dask client failed: %r", exc)

    # -- internals ----------------------------------------------------------------------

    def _ended(self, future: distributed.Future) -> None:
        self._done.put((future, time.monotonic()))

    def _connect(self, security: distributed.Security | None) -> distributed.Client:
        """The client (ExecutorLost naming the problem when there is none)."""
        security = security or distributed.Security()  # Dask's TLS settings, if any
        if self.address.startswith("tls://") and not _has_tls(security):
            raise ExecutorLost(
                f"{self.address} needs TLS; this client's TLS settings are missing or "
                "incomplete: set distributed.comm.tls.ca-file, .client.cert and .client.key (e.g. "
                "DASK_DISTRIBUTED__COMM__TLS__CA_FILE=... in the environment)"
            )
        try:
            client = distributed.Client(
                self.address,
                timeout=self._timeout,
                set_as_default=False,
                security=security,
                name="blockqnn-master",
            )
        except (OSError, TimeoutError) as exc:
            raise ExecutorLost(
                f"cannot connect to the Dask scheduler at {self.address}"
                f" within {self._timeout:g} s: {exc}"
            ) from exc
        logger.info("connected to the Dask scheduler at %s", self.address)
        return client

    def _warn_without_workers(self) -> None:
        """Say so (every :data:`NO_WORKERS_WARNING_S` s) while no worker can evaluate."""
        now = time.monotonic()
        if self._warned_at is not None and now - self._warned_at < NO_WORKERS_WARNING_S:
            return
        if self.slots == 0:
            self._warned_at = now
            needing = f" with resources {self.resources}" if self.resources else ""
            logger.warning(
                "waiting: the Dask scheduler at %s has no worker%s; start one with "
                "`dask worker %s`",
                self.address,
                needing,
                self.address,
            )

    def _lost(self, reason: object) -> ExecutorLost:
        return ExecutorLost(
            f"lost the Dask scheduler at {self.address}: {reason}."
            " Everything finished is saved; continue with --resume"
        )

    def _check_connected(self) -> None:
        """Raise :class:`ExecutorLost` unless the client's connection is up."""
        status = self._client.status
        if status != "running":
            raise self._lost(f"the connection dropped (client status {status!r})")

    def _scheduler_identity(self) -> dict[str, Any]:
        try:
            return self._client.sync(
                self._client.scheduler.identity, n_workers=-1, callback_timeout=self._timeout
            )
        except (OSError, TimeoutError) as exc:
            raise self._lost(repr(exc)) from exc

    def _until_deadline(self, wait_s: float | None) -> float | None:
        """``wait_s`` shortened to end when the first evaluation in flight times out."""
        self._note_starts()
        if not self._deadlines:
            return wait_s
        first = max(0.0, min(self._deadlines.values()) - time.monotonic())
        return first if wait_s is None else min(wait_s, first)

    def _note_starts(self) -> None:
        """Start the timeout of every evaluation a worker reported begun (queued tasks and
        a worker's loading of the evaluator do not count)."""
        with contextlib.suppress(queue.Empty):
            while True:
                key = self._started.get_nowait()
                if key in self._inflight and self.timeout_s is not None:
                    self._deadlines.setdefault(key, time.monotonic() + self.timeout_s)

    def _expire(self) -> list[Outcome]:
        """Lost outcomes of the evaluations past their deadline: each task is cancelled and
        the worker running it restarted."""
        self._note_starts()
        now = time.monotonic()
        expired = [key for key, deadline in self._deadlines.items() if deadline <= now]
        if not expired:
            return []
        running = {key: w for w, keys in self._client.processing().items() for key in keys}
        outcomes = []
        for key in expired:
            del self._deadlines[key]
            cid, future = self._inflight.pop(key)
            future.cancel()
            worker = running.get(key)
            if worker is not None:
                self._restart(worker)
            message = f"the evaluation ran past the {self.timeout_s:g} s timeout"
            logger.warning("candidate %d: %s (worker %s restarted)", cid, message, worker)
            outcomes.append(Outcome(cid, error=message, lost=True, worker=worker))
        return outcomes

    def _restart(self, worker: str) -> None:
        """Restart a stalled worker (through its nanny); a failure is only logged."""
        try:
            self._client.restart_workers([worker], timeout=self._timeout * 3)
        except Exception as exc:  # e.g. a worker without a nanny: it keeps its thread busy
            logger.warning("could not restart the stalled worker %s: %r", worker, exc)

    def _collect(self, ended: list[tuple[distributed.Future, float]]) -> list[Outcome]:
        """The outcomes of ended tasks that are still in flight (those that finished are
        fetched in one round trip)."""
        at = {f.key: t for f, t in ended}
        for future, _ in ended:
            self._deadlines.pop(future.key, None)
        tasks = [(self._inflight.pop(f.key)[0], f) for f, _ in ended if f.key in self._inflight]
        fetched = self._gather([f for _, f in tasks if f.status == "finished"])
        if self.auto is not None:
            for _, f in tasks:
                self.auto.ended(at[f.key], (fetched.get(f.key) or {}).get("seconds"))
        return [self._outcome(cid, f, fetched.get(f.key)) for cid, f in tasks]

    def _gather(self, futures: list[distributed.Future]) -> dict[str, Any]:
        """Results by key; ``{}`` if the batch cannot be fetched whole (:meth:`_outcome`
        then fetches each one and tells the failures apart)."""
        if not futures:
            return {}
        try:
            return dict(zip([f.key for f in futures], self._client.gather(futures), strict=True))
        except Exception as exc:
            logger.debug("fetching %d results at once failed: %r", len(futures), exc)
            return {}

    def _outcome(self, cid: int, future: distributed.Future, data: Any) -> Outcome:
        """The outcome of candidate ``cid``'s ended task, ``data`` its result if fetched."""
        try:
            data = future.result() if data is None else data
        except distributed.KilledWorker as exc:
            return Outcome(cid, error=f"its workers died: {exc}", lost=True)
        except CancelledError as exc:
            self._check_connected()
            return Outcome(cid, error=f"the Dask task was cancelled: {exc}", lost=True)
        except OSError as exc:
            raise self._lost(repr(exc)) from exc
        except Exception as exc:  # the task itself failed (it should not)
            return Outcome(cid, error=f"the Dask task failed: {exc!r}")
        if "broken" in data:
            raise ExecutorLost(data["broken"])
        return Outcome.from_plain(data)
