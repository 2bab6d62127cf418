"""Scaling of the real search loop on a Dask cluster: worker utilisation and master cost.

For each worker count W: a LocalCluster of W single-threaded thread workers on 127.0.0.1
(over TCP, served by a child process as by a scheduler machine), a fresh run (``RunStore``
in a temporary directory, the NSC space, Q-learning, a progress callback as the CLI's) in
this process (the master), and a stand-in evaluator that sleeps ``--seconds`` and returns
a fixed result; the budget is ``--per-worker`` x W evaluations. Reported per W:

- utilisation = total busy seconds (the evaluations' measured durations) / (W x wall time
  of ``Search.run``), and where the idle rest lies: before each worker's first evaluation
  (ramp), between evaluations (gaps: a result waiting for the master), after its last
  (tail);
- master ms/result = time the loop spent outside ``executor.wait`` per result, and the part
  of it spent in the executor (``slots``, ``submit``: talking to the scheduler).

``--prefetch 0,1`` repeats the whole series with ``DaskExecutor(prefetch=...)``; the
default is the executor's own, ``auto``. ``--rungs 1,3`` runs the search with rungs: each
rung sleeps its share of ``--seconds``, and a rung below the top returns ``--state-kb``
of state that travels back through the master with the promotion (busy time counts every
rung).

Prints a table, then one JSON line. ``--profile`` prints the master thread's cProfile (by
internal time) of the largest W to stderr.

    python benchmarks/scaling.py --workers 1,8,32,64 --seconds 2 --per-worker 4
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import dataclasses
import itertools
import json
import logging
import multiprocessing
import pstats
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

from distributed import LocalCluster

from blockqnn.config import SearchConfig
from blockqnn.evaluation import Result, Step
from blockqnn.execution.base import Executor, Outcome
from blockqnn.execution.dask_cluster import DaskExecutor
from blockqnn.search import Search, create_run


@dataclass(frozen=True)
class SleepingEvaluator:
    """Stands in for training: sleeps ``seconds``; the result's ``cost_s`` is the time
    the evaluation really took. With rungs (``full``: the top rung's budget) a rung
    sleeps its share of ``seconds``, its accuracy depends on the architecture (so rungs
    promote some), and below the top it returns ``state_bytes`` of state, which the
    master keeps and sends with the promotion, as a training state travels."""

    seconds: float
    full: float = 1.0
    state_bytes: int = 0

    def evaluate(self, arch: str) -> Result:
        return self._sleep(self.seconds, 50.0)

    def evaluate_rung(self, arch: str, step: Step) -> Result:
        accuracy = zlib.crc32(arch.encode()) % 1000 / 10
        result = self._sleep(self.seconds * (step.budget - step.start) / self.full, accuracy)
        state = None if step.last else bytes(self.state_bytes)
        return dataclasses.replace(result, state=state)

    @staticmethod
    def _sleep(seconds: float, accuracy: float) -> Result:
        start = time.time()
        time.sleep(seconds)
        end = time.time()
        return Result(accuracy=accuracy, cost_s=end - start, extra={"start": start, "end": end})


@dataclass
class TimedExecutor:
    """Passes everything to ``inner``, timing the calls (seconds)."""

    inner: Executor
    in_wait: float = 0.0
    in_calls: float = 0.0  #: slots and submit
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def slots(self) -> int:
        start = time.perf_counter()
        slots = self.inner.slots
        self.in_calls += time.perf_counter() - start
        return slots

    def submit(self, cid: int, arch: str, step: Step | None = None) -> None:
        start = time.perf_counter()
        self.inner.submit(cid, arch, step)
        self.in_calls += time.perf_counter() - start

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        start = time.perf_counter()
        outcomes = self.inner.wait(timeout)
        self.in_wait += time.perf_counter() - start
        self.outcomes.extend(outcomes)
        return outcomes

    def close(self) -> None:
        self.inner.close()


def run_config(evaluations: int, rungs: list[float]) -> SearchConfig:
    """The run: the paper's NSC space and agent; the evaluator entry is only recorded
    (the executor runs the stand-in); every candidate is evaluated (no dedupe)."""
    return SearchConfig(
        space="nsc",
        evaluations=evaluations,
        batch=64,
        dedupe=False,
        evaluator={"kind": "train"},
        rungs=rungs,
    )


def serve_cluster(workers: int, conn: Connection) -> None:
    """A child process: a LocalCluster of ``workers`` single-threaded thread workers on
    127.0.0.1 (over TCP), its address sent on ``conn``, until ``conn`` says stop."""
    logging.getLogger("distributed").setLevel(logging.WARNING)
    with LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=False,
        protocol="tcp://",
        host="127.0.0.1",
        dashboard_address=":0",
    ) as cluster:
        conn.send(cluster.scheduler_address)
        conn.recv()


@contextlib.contextmanager
def cluster_process(workers: int) -> Iterator[str]:
    """The scheduler address of a cluster served by a child process, as a scheduler on
    its own machine would be (so it does not share this process's GIL)."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=serve_cluster, args=(workers, child), daemon=True)
    process.start()
    try:
        yield parent.recv()
    finally:
        parent.send("stop")
        process.join(30)
        if process.is_alive():
            process.kill()


def measure(
    workers: int,
    seconds: float,
    per_worker: int,
    prefetch: int | str,
    profile: bool,
    rungs: list[float] = (),
    state_bytes: int = 0,
) -> dict:
    """One search on ``workers`` workers; its utilisation and master cost."""
    evaluations = workers * per_worker
    evaluator = SleepingEvaluator(seconds, rungs[-1] if rungs else 1.0, state_bytes)
    with cluster_process(workers) as address, tempfile.TemporaryDirectory() as tmp:
        dask = DaskExecutor(address, evaluator, prefetch=prefetch)
        executor = TimedExecutor(dask)
        config = run_config(evaluations, list(rungs))
        with create_run(Path(tmp) / "run", config) as store:
            search = Search(store, config, executor, progress=lambda progress: None)
            profiler = cProfile.Profile() if profile else None
            start = time.time()
            if profiler is not None:
                profiler.enable()
            counts = search.run()
            end = time.time()
            if profiler is not None:
                profiler.disable()
                pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    assert counts["complete"] == evaluations, counts
    wall = end - start
    busy = sum(o.result.cost_s for o in executor.outcomes)
    reaction = None if dask.auto is None else dask.auto.reaction_s  # None: not measured
    return {
        "workers": workers,
        "prefetch": prefetch if dask.auto is None else f"auto:{dask.prefetch}",
        "evaluations": evaluations,
        "rung_steps": len(executor.outcomes),
        "wall_s": wall,
        "utilisation": busy / (workers * wall),
        **idle_shares(executor.outcomes, start, end, workers),
        "master_ms_per_result": 1e3 * (wall - executor.in_wait) / evaluations,
        "reaction_ms": None if reaction is None else 1e3 * reaction,
        "executor_ms_per_result": 1e3 * executor.in_calls / evaluations,
    }


def idle_shares(outcomes: list[Outcome], start: float, end: float, workers: int) -> dict:
    """Where the workers' idle time lies, as shares of workers x wall time: before their
    first evaluation (ramp), between evaluations (gaps), after their last one (tail)."""
    spans: dict[str, list[tuple[float, float]]] = {}
    for o in outcomes:
        spans.setdefault(o.worker, []).append((o.result.extra["start"], o.result.extra["end"]))
    ramp = gaps = tail = 0.0
    for runs in spans.values():
        runs.sort()
        ramp += runs[0][0] - start
        gaps += sum(b[0] - a[1] for a, b in itertools.pairwise(runs))
        tail += end - runs[-1][1]
    ramp += (workers - len(spans)) * (end - start)  # workers that never ran anything
    total = workers * (end - start)
    return {"ramp": ramp / total, "gaps": gaps / total, "tail": tail / total}


def print_table(rows: list[dict]) -> None:
    print(f"{'workers':>7} {'prefetch':>8} {'evals':>6} {'wall s':>7} {'util %':>7} "
          f"{'ramp %':>7} {'gaps %':>7} {'tail %':>7} {'master ms/res':>14} "
          f"{'(executor)':>10}")  # fmt: skip
    for r in rows:
        shares = " ".join(f"{100 * r[k]:>7.2f}" for k in ("utilisation", "ramp", "gaps", "tail"))
        print(
            f"{r['workers']:>7} {r['prefetch']:>8} {r['evaluations']:>6} {r['wall_s']:>7.2f} "
            f"{shares} "
            f"{r['master_ms_per_result']:>14.2f} {r['executor_ms_per_result']:>10.2f}"
        )


def _depth(text: str) -> int | str:
    return text if text == "auto" else int(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,8,32,64", help="comma-separated worker counts")
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per evaluation")
    parser.add_argument("--per-worker", type=int, default=4, help="evaluations per worker")
    parser.add_argument(
        "--prefetch", default="auto", help="comma-separated DaskExecutor prefetch (N or auto)"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the largest run")
    parser.add_argument(
        "--rungs", default="", help="rung budgets, e.g. 1,3 (a rung sleeps its share)"
    )
    parser.add_argument(
        "--state-kb", type=int, default=100, help="rungs: state returned per rung below the top"
    )
    args = parser.parse_args(argv)
    rungs = [float(b) for b in args.rungs.split(",") if b]
    logging.getLogger("distributed").setLevel(logging.WARNING)
    counts = [int(w) for w in args.workers.split(",")]
    rows = [
        measure(
            w,
            args.seconds,
            args.per_worker,
            _depth(p),
            args.profile and w == max(counts),
            rungs,
            1024 * args.state_kb,
        )
        for p in args.prefetch.split(",")
        for w in counts
    ]
    print_table(rows)
    report = {"seconds": args.seconds, "per_worker": args.per_worker, "rungs": rungs}
    print(json.dumps({**report, "runs": rows}))


if __name__ == "__main__":
    main()
