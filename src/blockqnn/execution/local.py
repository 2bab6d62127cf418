"""Evaluations in a local pool of worker processes that survives the death of any worker.

Each worker slot is one ``spawn`` process with its own pipe; the master gives an idle worker
one task at a time and queues the rest (FIFO). A worker that dies (``os._exit``, SIGKILL,
the OOM killer) costs only the candidate it was evaluating, reported as a *lost*
:class:`~blockqnn.execution.base.Outcome` (the search loop retries it), and is replaced by a
fresh process. ``concurrent.futures.ProcessPoolExecutor`` is not used because one dead
worker breaks the whole pool and every task running in it.

Messages are plain data: master -> worker ``(cid, arch, step)`` (``step`` a
:class:`~blockqnn.evaluation.Step` or None); worker -> master
``("ready",)`` once set up, ``("outcome", cid, result_dict | None, error | None)`` per task,
or ``("broken", message)`` when the worker cannot set itself up (the evaluator cannot be
unpickled there), which makes :meth:`ProcessExecutor.wait` raise
:class:`~blockqnn.execution.base.ExecutorLost`.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing import connection
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from blockqnn.evaluation import Evaluator, Step
from blockqnn.execution.base import ClosingExecutor, ExecutorLost, Outcome, evaluate_safely

logger = logging.getLogger(__name__)

#: Seconds :meth:`ProcessExecutor.close` waits for terminated workers before killing them.
CLOSE_GRACE_S = 2.0
#: A slot whose process dies this many times in a row before it is ready ends the pool.
MAX_START_FAILURES = 3


# --- worker side -------------------------------------------------------------------------


def _set_environment(threads: int, gpu: int | None) -> None:
    """One BLAS/OpenMP thread pool of ``threads`` threads; the worker's GPU, if any."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)


def _limit_torch_threads(threads: int) -> None:
    """``torch.set_num_threads(threads)`` if the evaluator has imported torch (cheap)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


def _exit_with_master() -> None:
    """Exit at once when the master process dies, so no orphan keeps evaluating."""
    master = multiprocessing.parent_process()
    if master is None:
        return

    def watch() -> None:
        master.join()
        os._exit(1)

    threading.Thread(target=watch, name="master-watch", daemon=True).start()


def _worker_main(conn: Connection, index: int, blob: bytes, threads: int, gpu: int | None) -> None:
    """A worker process: set up, then evaluate one ``(cid, arch, step)`` at a time until EOF.

    The environment is set before the evaluator is unpickled, so whatever its module
    imports (torch) starts with ``threads`` threads and the right GPU. The worker exits
    when the master dies, even in the middle of an evaluation.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the master's to handle
    _set_environment(threads, gpu)
    name = f"local-{index}-pid{os.getpid()}"
    try:
        evaluator: Evaluator = pickle.loads(blob)
        _limit_torch_threads(threads)
    except Exception:
        conn.send(("broken", f"{name} could not set up its evaluator:\n{traceback.format_exc()}"))
        return
    _exit_with_master()
    with contextlib.suppress(EOFError, BrokenPipeError):  # the master closed the pipe
        conn.send(("ready",))
        while True:
            cid, arch, step = conn.recv()
            _limit_torch_threads(threads)
            conn.send(("outcome", evaluate_safely(evaluator, cid, arch, name, step).to_plain()))


# --- master side -------------------------------------------------------------------------


@dataclass(eq=False)
class _Worker:
    """The master's view of one worker slot's current process."""

    index: int
    process: BaseProcess
    conn: Connection
    ready: bool = False
    task: tuple[int, str, Step | None] | None = None
    deadline: float | None = None  #: monotonic time its task must end by (timeout)
    start_failures: int = 0  #: deaths before ready in a row of this slot's processes

    @property
    def name(self) -> str:
        return f"local-{self.index}-pid{self.process.pid}"


def _exit_description(exitcode: int | None) -> str:
    if exitcode is None:
        return "exit code unknown"
    if exitcode < 0:
        try:
            return f"signal {-exitcode} ({signal.Signals(-exitcode).name})"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


class ProcessExecutor(ClosingExecutor):
    """Runs evaluations in ``workers`` local worker processes (one task per worker).

    ``evaluator`` is pickled once and sent to every worker at its start. Each worker sets
    ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` to ``threads`` and, when torch is loaded,
    ``torch.set_num_threads(threads)``: use one thread per worker and one worker per core.
    With ``gpus``, worker ``i`` sees only GPU ``gpus[i % len(gpus)]``
    (``CUDA_VISIBLE_DEVICES``). Workers ignore SIGINT; they are daemonic, so an evaluator
    cannot start processes of its own (e.g. DataLoader workers). A task goes only to a
    worker that is ready (set up: torch imported, evaluator unpickled), so ``timeout_s``
    counts the evaluation, not the start-up: a worker whose evaluation runs longer
    (stalled, stopped) is killed and replaced, and its candidate's outcome is *lost* with an
    error naming the timeout.

    Contract (see :class:`~blockqnn.execution.base.Executor`): every submitted cid appears
    in exactly one outcome; a worker's death yields a lost outcome for its candidate only
    and a replacement worker; a worker that dies while starting holds no task and is
    replaced at no cost. :meth:`wait` raises ``ExecutorLost`` when workers cannot start at
    all (the evaluator cannot be unpickled, or one slot's processes die before they are
    ready :data:`MAX_START_FAILURES` times in a row).
    Used from one thread. A context manager; :meth:`close` is idempotent.
    """

    def __init__(
        self,
        evaluator: Evaluator,
        workers: int,
        threads: int = 1,
        gpus: Sequence[int] | None = None,
        timeout_s: float | None = None,
    ) -> None:
        if workers < 1 or threads < 1:
            raise ValueError(f"need workers >= 1 and threads >= 1, got {workers}, {threads}")
        if timeout_s is not None and not timeout_s > 0:
            raise ValueError(f"timeout_s must be positive or None, got {timeout_s}")
        self.timeout_s = timeout_s
        if gpus is not None and not gpus:
            raise ValueError("gpus must be None or a non-empty sequence")
        self.slots = workers
        self.threads = threads
        self.gpus = list(gpus) if gpus is not None else None
        self._blob = pickle.dumps(evaluator)
        self._context = multiprocessing.get_context("spawn")
        self._queue: deque[tuple[int, str, Step | None]] = deque()
        self._closed = False
        self._early: list[Outcome] = []  #: outcomes read by :meth:`wait_ready`
        self._workers: list[_Worker] = []
        try:
            self._workers.extend(self._start(i) for i in range(workers))
        except BaseException:
            self.close()
            raise

    # -- public API ---------------------------------------------------------------------

    def submit(self, cid: int, arch: str, step: Step | None = None) -> None:
        """Queue one evaluation (one rung of it with ``step``); it starts as soon as a
        worker is idle."""
        if self._closed:
            raise RuntimeError("submit() on a closed ProcessExecutor")
        self._queue.append((cid, arch, step))
        self._dispatch()

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        """Block until at least one outcome is ready or ``timeout`` seconds pass.

        Returns ``[]`` at once when nothing is queued or running (or after :meth:`close`).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        outcomes, self._early = self._early, []
        while not outcomes and not self._closed and self._pending():
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            outcomes.extend(self._poll(self._until_timeout(remaining)))
            outcomes.extend(self._expire())
            self._dispatch()
            if remaining == 0.0:
                break
        return outcomes

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until every worker is set up and can take a task at once (outcomes that
        arrive meanwhile are kept for :meth:`wait`); TimeoutError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while not all(w.ready for w in self._workers):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"workers not ready after {timeout:g} s")
            self._early.extend(self._poll(min(remaining, 0.1)))
            self._dispatch()

    def close(self) -> None:
        """Terminate every worker (kill those still alive after a grace period).

        Queued and running evaluations are dropped. Safe to call more than once.
        """
        if self._closed:
            return
        self._closed = True
        self._queue.clear()
        for worker in self._workers:
            worker.process.terminate()
        deadline = time.monotonic() + CLOSE_GRACE_S
        for worker in self._workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.conn.close()
            worker.process.close()
        self._workers.clear()

    def pids(self) -> list[int]:
        """The current worker processes' pids, by slot (for monitoring and tests)."""
        return [w.process.pid for w in self._workers if w.process.pid is not None]

    # -- internals ----------------------------------------------------------------------

    def _start(self, index: int) -> _Worker:
        gpu = self.gpus[index % len(self.gpus)] if self.gpus is not None else None
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=_worker_main,
            args=(child, index, self._blob, self.threads, gpu),
            name=f"blockqnn-local-{index}",
            daemon=True,
        )
        process.start()
        child.close()  # the master keeps only its end, so a dead worker reads as EOF
        return _Worker(index, process, parent)

    def _pending(self) -> bool:
        return bool(self._queue) or any(w.task is not None for w in self._workers)

    def _dispatch(self) -> None:
        for worker in self._workers:
            if not self._queue:
                return
            if worker.ready and worker.task is None:
                worker.task = self._queue.popleft()
                if self.timeout_s is not None:
                    worker.deadline = time.monotonic() + self.timeout_s
                with contextlib.suppress(OSError):  # it died: its sentinel reports the loss
                    worker.conn.send(worker.task)

    def _until_timeout(self, wait_s: float | None) -> float | None:
        """``wait_s`` shortened to end when the first running evaluation times out."""
        deadlines = [w.deadline for w in self._workers if w.task is not None and w.deadline]
        if not deadlines:
            return wait_s
        first = max(0.0, min(deadlines) - time.monotonic())
        return first if wait_s is None else min(wait_s, first)

    def _expire(self) -> list[Outcome]:
        """Kill and replace the workers whose evaluation ran past ``timeout_s``; the lost
        outcomes of their candidates."""
        now = time.monotonic()
        expired = [
            w for w in self._workers if w.task is not None and w.deadline and now >= w.deadline
        ]
        outcomes: list[Outcome] = []
        for worker in expired:
            worker.process.kill()
            reason = f"killed: the evaluation ran past the {self.timeout_s:g} s timeout"
            lost = self._bury(worker, reason)
            if lost is not None:
                outcomes.append(lost)
        return outcomes

    def _poll(self, timeout: float | None) -> list[Outcome]:
        """Wait for messages or deaths; handle every ready worker once."""
        by_handle: dict[Any, _Worker] = {}
        for worker in self._workers:
            by_handle[worker.conn] = worker
            by_handle[worker.process.sentinel] = worker
        ready = [by_handle[handle] for handle in connection.wait(list(by_handle), timeout)]
        outcomes: list[Outcome] = []
        for worker in dict.fromkeys(ready):  # each worker once, even if both handles fired
            outcomes.extend(self._service(worker))
        return outcomes

    def _service(self, worker: _Worker) -> list[Outcome]:
        """Read every message a worker has sent; then, if it is dead, replace it."""
        outcomes: list[Outcome] = []
        try:
            while worker.conn.poll():
                outcome = self._handle(worker, worker.conn.recv())
                if outcome is not None:
                    outcomes.append(outcome)
        except (EOFError, OSError):
            pass  # the pipe is closed: the worker is dead or dying
        else:
            if worker.process.is_alive():
                return outcomes
        lost = self._bury(worker)
        if lost is not None:
            outcomes.append(lost)
        return outcomes

    def _handle(self, worker: _Worker, message: tuple[Any, ...]) -> Outcome | None:
        kind = message[0]
        if kind == "ready":
            worker.ready, worker.start_failures = True, 0
            return None
        if kind == "broken":
            raise ExecutorLost(message[1])
        worker.task, worker.deadline = None, None
        return Outcome.from_plain(message[1])

    def _bury(self, worker: _Worker, reason: str | None = None) -> Outcome | None:
        """Replace a dead worker; the lost outcome of its task, if it had one. ``reason``
        says why it died when the master killed it (else its exit status does)."""
        worker.process.join(CLOSE_GRACE_S)
        if worker.process.is_alive():  # pipe closed but still running: make sure
            worker.process.kill()
            worker.process.join()
        how = reason or _exit_description(worker.process.exitcode)
        pid = worker.process.pid
        failures = 0 if worker.ready else worker.start_failures + 1
        if failures >= MAX_START_FAILURES:
            raise ExecutorLost(
                f"worker {pid} ({worker.name}) died while starting ({how}): "
                f"{failures} starts in a row of worker slot {worker.index} failed"
            )
        task, name = worker.task, worker.name
        worker.conn.close()
        worker.process.close()
        fresh = self._start(worker.index)
        fresh.start_failures = failures
        self._workers[self._workers.index(worker)] = fresh
        if not worker.ready:
            logger.warning("worker %d died while starting (%s); replaced", pid, how)
            return None
        if task is None:
            logger.warning("worker %d died while idle (%s); replaced", pid, how)
            return None
        cid = task[0]
        message = f"worker {pid} died ({how}) while evaluating candidate {cid}"
        logger.warning("%s; replaced", message)
        return Outcome(cid, error=message, lost=True, worker=name)
