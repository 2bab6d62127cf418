"""Helpers for the Dask executor tests: evaluators that workers import, clusters on
loopback, and a search driver to run (and kill) as a separate master process.

    python -m tests.helpers_dask RUN_DIR ADDRESS [--config JSON] [--sleep S]

creates the run in RUN_DIR from ``--config`` (a ``SearchConfig.to_dict()``), or resumes it
if it exists, and runs it to the end on the Dask scheduler at ADDRESS with the run's own
evaluator (``make_evaluator``), delayed by ``--sleep`` seconds. Exit status 0 when the run
finished, 3 with the message on stderr when the scheduler was lost.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dask.config
from distributed import Client, LocalCluster

from blockqnn.config import SearchConfig, make_evaluator
from blockqnn.evaluation import Evaluator, Result
from blockqnn.execution.base import Executor, ExecutorLost, Outcome
from blockqnn.execution.dask_cluster import DaskExecutor, worker_config, worker_shell_environment
from blockqnn.search import DB_NAME, Search, create_run, open_run

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class SleepEvaluator:
    """Sleeps ``seconds``, then evaluates with ``inner`` (a stand-in for training time)."""

    inner: Evaluator
    seconds: float

    def evaluate(self, arch: str) -> Result:
        time.sleep(self.seconds)
        return self.inner.evaluate(arch)


class ThreadsEvaluator:
    """Reports torch's thread count and OMP_NUM_THREADS in ``extra``, then sets torch to 3
    threads (the executor must set it back before the next evaluation)."""

    def evaluate(self, arch: str) -> Result:
        import torch

        extra = {"threads": torch.get_num_threads(), "omp": os.environ.get("OMP_NUM_THREADS")}
        torch.set_num_threads(3)
        return Result(accuracy=1.0, extra=extra)


class Unloadable:
    """An evaluator that pickles but cannot be unpickled (as if its module were missing)."""

    def __init__(self) -> None:
        self.state = 1  # pickle calls __setstate__ only for a non-empty state

    def __setstate__(self, state: dict) -> None:
        raise ImportError("no module named 'elsewhere'")

    def evaluate(self, arch: str) -> Result:
        return Result(accuracy=0.0)


def evaluator_for(config: SearchConfig, sleep: float = 0.0) -> Evaluator:
    """The run's evaluator, delayed by ``sleep`` seconds per evaluation if > 0."""
    evaluator = make_evaluator(config)
    return SleepEvaluator(evaluator, sleep) if sleep > 0 else evaluator


@dataclass
class RecordingExecutor:
    """Passes everything to ``inner``; keeps every outcome, every ``slots`` reading and the
    (monotonic) time of each candidate's last submission."""

    inner: Executor
    outcomes: list[Outcome] = field(default_factory=list)
    slot_readings: list[int] = field(default_factory=list)
    submitted: dict[int, float] = field(default_factory=dict)

    @property
    def slots(self) -> int:
        slots = self.inner.slots
        self.slot_readings.append(slots)
        return slots

    def submit(self, cid: int, arch: str) -> None:
        self.submitted[cid] = time.monotonic()
        self.inner.submit(cid, arch)

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        outcomes = self.inner.wait(timeout)
        self.outcomes.extend(outcomes)
        return outcomes

    def close(self) -> None:
        self.inner.close()


# --- clusters ----------------------------------------------------------------------------


@contextlib.contextmanager
def local_cluster(n_workers: int = 2, allowed_failures: int = 3) -> Iterator[LocalCluster]:
    """A LocalCluster on 127.0.0.1: ``n_workers`` single-threaded worker processes, the
    recommended worker environment, and the scheduler's ``allowed-failures``."""
    setting = {"distributed.scheduler.allowed-failures": allowed_failures}
    with worker_config(), dask.config.set(setting):
        cluster = LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=":0",
        )
    with cluster:
        yield cluster


def running_on(client: Client) -> dict[int, str]:
    """Candidate id -> address of the worker running its evaluation, for those running."""
    return {
        int(key.split("-")[2]): worker
        for worker, keys in client.processing().items()
        for key in keys
    }


def spawn(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    """A child process in its own process group (so its own children can be killed)."""
    return subprocess.Popen(
        args, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL ``proc`` and the processes it started; reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def start_scheduler(directory: Path) -> tuple[subprocess.Popen, str]:
    """A ``dask scheduler`` process on 127.0.0.1 and its address."""
    file = directory / "scheduler.json"
    proc = spawn(
        ["dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
         "--dashboard-address", ":0", "--scheduler-file", str(file)]
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(OSError, ValueError):  # not written (whole) yet
            return proc, json.loads(file.read_text())["address"]
        time.sleep(0.05)
    kill_group(proc)
    raise AssertionError(f"the scheduler did not start: {proc.stderr.read().decode()}")


def start_workers(address: str, n_workers: int, hide: Path | None = None) -> subprocess.Popen:
    """``dask worker`` with ``n_workers`` single-threaded processes, started as from a shell
    with the recommended environment (:func:`worker_shell_environment`).

    ``hide``: the workers run as on another machine that has no such folder: in a mount
    namespace of their own (``unshare``, no privileges needed) where an empty read-only
    file system covers ``hide``, so they can neither read nor write what the master keeps
    there."""
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_TRIM_THRESHOLD_"}
    env.update(
        worker_shell_environment(), PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    )
    command = ["dask", "worker", address, "--nworkers", str(n_workers), "--nthreads", "1",
               "--host", "127.0.0.1", "--no-dashboard"]  # fmt: skip
    if hide is not None:
        cover = 'mount -t tmpfs -o ro none "$0" && exec "$@"'
        command = ["unshare", "--mount", "--map-root-user", "--propagation", "private",
                   "sh", "-c", cover, str(hide), *command]  # fmt: skip
    return spawn(command, env)


# --- runs --------------------------------------------------------------------------------


def completed(run_dir: Path) -> int:
    """Complete candidates in a run's database, read directly (0 before it exists)."""
    try:
        with sqlite3.connect(f"file:{run_dir / DB_NAME}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT count(*) FROM candidates WHERE state='complete'").fetchone()[
                0
            ]
    except sqlite3.Error:
        return 0


def drive(run_dir: Path, address: str, config: SearchConfig | None, sleep: float) -> int:
    """Create (with ``config``) or resume the run in ``run_dir``; run it on the cluster."""
    if (run_dir / DB_NAME).exists():
        store, config = open_run(run_dir)
    else:
        assert config is not None, "a new run needs --config"
        store = create_run(run_dir, config)
    with store:
        try:
            Search(store, config, DaskExecutor(address, evaluator_for(config, sleep))).run()
        except ExecutorLost as exc:
            print(exc, file=sys.stderr)
            return 3
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.helpers_dask")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("address")
    parser.add_argument("--config", type=json.loads, help="SearchConfig as JSON (new run)")
    parser.add_argument("--sleep", type=float, default=0.0)
    args = parser.parse_args(argv)
    config = SearchConfig.from_dict(args.config) if args.config else None
    return drive(args.run_dir, args.address, config, args.sleep)


if __name__ == "__main__":
    sys.exit(main())
