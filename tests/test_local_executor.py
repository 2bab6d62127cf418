"""The local process pool: parallel results, worker deaths cost only their own candidate,
failures, environment set-up, a real search with dying workers, and a clean close."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from blockqnn.config import SearchConfig
from blockqnn.execution.base import ExecutorLost, Outcome
from blockqnn.execution.local import ProcessExecutor
from blockqnn.search import Search, create_run
from blockqnn.store import CandidateState
from blockqnn.tabular import TabularEvaluator, load_table

from .conftest import ROOT, shared_file
from .helpers_exec import DyingTabular, ScriptEvaluator, SlowStart, Unloadable

TABLE = shared_file("nb201", "cifar10_valid.csv")


@pytest.fixture
def pool() -> Iterator[ProcessExecutor]:
    with ProcessExecutor(ScriptEvaluator(), workers=2) as executor:
        yield executor


def collect(executor: ProcessExecutor, count: int, timeout: float = 30.0) -> dict[int, Outcome]:
    """Wait for ``count`` outcomes (failing after ``timeout`` seconds), keyed by cid."""
    outcomes: dict[int, Outcome] = {}
    deadline = time.monotonic() + timeout
    while len(outcomes) < count:
        assert time.monotonic() < deadline, f"only {sorted(outcomes)} arrived"
        for outcome in executor.wait(timeout=1.0):
            assert outcome.cid not in outcomes, f"cid {outcome.cid} reported twice"
            outcomes[outcome.cid] = outcome
    return outcomes


def warm_up(executor: ProcessExecutor) -> None:
    """Wait until every worker has started."""
    executor.wait_ready()


def pid_in(path: Path, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text()):
        assert time.monotonic() < deadline, f"{path} never written"
        time.sleep(0.01)
    return int(path.read_text())


def alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie left for init counts as dead)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_tabular_results_come_back_for_every_cid():
    evaluator = TabularEvaluator(str(TABLE), "valid-accuracy", "test-accuracy")
    archs = list(load_table(TABLE, "valid-accuracy"))[:8]
    with ProcessExecutor(evaluator, workers=2) as executor:
        for cid, arch in enumerate(archs):
            executor.submit(cid, arch)
        outcomes = collect(executor, len(archs))
    assert sorted(outcomes) == list(range(len(archs)))
    for cid, arch in enumerate(archs):
        assert outcomes[cid].error is None
        assert outcomes[cid].result == evaluator.evaluate(arch)
        assert outcomes[cid].worker.startswith("local-")


def test_two_workers_run_in_parallel(pool):
    warm_up(pool)
    start = time.monotonic()
    for cid in range(4):
        pool.submit(cid, "sleep 0.5")
    outcomes = collect(pool, 4)
    elapsed = time.monotonic() - start
    assert elapsed < 1.6, f"4 x 0.5 s on 2 workers took {elapsed:.2f} s"
    assert all(o.result.accuracy == len("sleep 0.5") for o in outcomes.values())
    assert len({o.worker for o in outcomes.values()}) == 2
    assert {o.result.extra["pid"] for o in outcomes.values()} == set(pool.pids())


def test_worker_exit_loses_only_its_candidate(pool):
    warm_up(pool)
    before = set(pool.pids())
    pool.submit(1, "sleep 0.5")
    pool.submit(2, "exit 3")
    outcomes = collect(pool, 2)
    lost = outcomes[2]
    assert lost.lost and lost.result is None
    assert "exit code 3" in lost.error and "candidate 2" in lost.error
    assert outcomes[1].result is not None and not outcomes[1].lost
    dead_pid = int(lost.worker.rpartition("pid")[2])
    assert dead_pid in before and dead_pid not in pool.pids()
    assert len(pool.pids()) == 2
    for cid in (3, 4):  # both workers, the replacement included, keep working
        pool.submit(cid, "sleep 0.2")
    later = collect(pool, 2)
    assert all(o.result is not None for o in later.values())
    assert {o.result.extra["pid"] for o in later.values()} == set(pool.pids())


def test_sigkilled_worker_loses_only_its_candidate(pool, tmp_path):
    warm_up(pool)
    pidfile = tmp_path / "pid"
    pool.submit(1, f"hang {pidfile}")
    pool.submit(2, "sleep 1")
    victim = pid_in(pidfile)
    assert victim in pool.pids()
    os.kill(victim, signal.SIGKILL)
    outcomes = collect(pool, 2)
    assert outcomes[1].lost and f"worker {victim} died" in outcomes[1].error
    assert "signal 9" in outcomes[1].error
    assert outcomes[2].result is not None
    assert victim not in pool.pids() and len(pool.pids()) == 2


def test_evaluator_exception_fails_the_candidate_and_the_worker_lives():
    with ProcessExecutor(ScriptEvaluator(), workers=1) as executor:
        executor.submit(1, "raise diverged: loss is NaN")
        executor.submit(2, "unpicklable")  # queued behind 1 on the single worker
        executor.submit(3, "sleep 0")
        outcomes = collect(executor, 3)
    failed = outcomes[1]
    assert not failed.lost and failed.result is None
    assert failed.error == "RuntimeError: diverged: loss is NaN"
    assert not outcomes[2].lost and "result could not be sent" in outcomes[2].error
    assert outcomes[3].result is not None
    assert outcomes[1].worker == outcomes[2].worker == outcomes[3].worker  # the same process


def test_workers_ignore_sigint(pool):
    warm_up(pool)
    pool.submit(1, "sleep 0.5")
    time.sleep(0.2)
    for pid in pool.pids():
        os.kill(pid, signal.SIGINT)
    outcome = collect(pool, 1)[1]
    assert outcome.result is not None, outcome.error


def test_worker_environment_threads_and_gpus():
    with ProcessExecutor(ScriptEvaluator(), workers=2, threads=2, gpus=[5, 7]) as executor:
        warm_up(executor)
        executor.submit(1, "env")
        executor.submit(2, "env")
        outcomes = collect(executor, 2)
    envs = {o.worker.split("-")[1]: o.result.extra for o in outcomes.values()}
    assert envs["0"]["CUDA_VISIBLE_DEVICES"] == "5" and envs["1"]["CUDA_VISIBLE_DEVICES"] == "7"
    assert all(e["OMP_NUM_THREADS"] == e["MKL_NUM_THREADS"] == "2" for e in envs.values())


def test_torch_threads_are_reset_before_each_evaluation():
    pytest.importorskip("torch")
    with ProcessExecutor(ScriptEvaluator(), workers=1) as executor:
        for cid in (1, 2):
            executor.submit(cid, "torch")
        outcomes = collect(executor, 2, timeout=60)
    # the evaluator sets 3 threads after each report; the executor sets 1 back
    assert [outcomes[cid].result.extra["threads"] for cid in (1, 2)] == [1, 1]


def test_unloadable_evaluator_loses_the_executor():
    with ProcessExecutor(Unloadable(), workers=1) as executor:
        executor.submit(1, "anything")
        with pytest.raises(ExecutorLost, match="could not set up its evaluator"):
            collect(executor, 1)


def nb201_config(**changes) -> SearchConfig:
    evaluator = {"kind": "tabular", "table": str(TABLE), "reward_column": "valid-accuracy"}
    options = {"evaluations": 12, "batch": 4, "seed": 5, "strategy": "random", "max_attempts": 3}
    return SearchConfig(space="nb201", evaluator=evaluator, **{**options, **changes})


@pytest.mark.parametrize("always", [False, True])
def test_search_survives_dying_workers(tmp_path, always):
    config = nb201_config()
    marker = tmp_path / "victim"
    evaluator = DyingTabular(str(TABLE), str(marker), always)
    store = create_run(tmp_path / "run", config)
    with store:
        Search(store, config, ProcessExecutor(evaluator, workers=2)).run()
        cands = store.candidates()
    assert sum(c.reused_from is None for c in cands) == 12  # re-proposals are free
    victims = [c for c in cands if c.arch == marker.read_text()]
    others = [c for c in cands if c.arch != marker.read_text()]
    assert victims and all(c.attempts == 1 for c in others)
    assert all(c.state == CandidateState.COMPLETE for c in others)
    if always:
        assert all(c.state == CandidateState.FAILED and c.attempts == 3 for c in victims)
        assert all("exit code 3" in c.error for c in victims)
    else:
        assert [(c.state, c.attempts) for c in victims] == [(CandidateState.COMPLETE, 2)]


def test_close_leaves_no_child_processes(tmp_path):
    executor = ProcessExecutor(ScriptEvaluator(), workers=2)
    warm_up(executor)
    pidfile = tmp_path / "pid"
    executor.submit(1, f"hang {pidfile}")
    executor.submit(2, "sleep 30")
    executor.submit(3, "sleep 30")  # queued
    pid_in(pidfile)
    pids = executor.pids()
    start = time.monotonic()
    executor.close()
    assert time.monotonic() - start < 1.5  # terminated, not left to the kill fallback
    executor.close()  # idempotent
    assert not {p.pid for p in multiprocessing.active_children()} & set(pids)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert executor.wait(timeout=0.1) == []
    with pytest.raises(RuntimeError, match="closed"):
        executor.submit(4, "sleep 0")


MASTER = """
import sys, time
from blockqnn.execution.local import ProcessExecutor
from tests.helpers_exec import ScriptEvaluator
executor = ProcessExecutor(ScriptEvaluator(), workers=2)
executor.submit(1, "hang " + sys.argv[1])
executor.submit(2, "sleep 0")
executor.wait(timeout=30)
print(*executor.pids(), flush=True)
time.sleep(60)
"""


def test_workers_exit_when_the_master_is_killed(tmp_path):
    pidfile = tmp_path / "pid"
    master = subprocess.Popen(
        [sys.executable, "-c", MASTER, str(pidfile)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        pids = [int(pid) for pid in master.stdout.readline().split()]
        pid_in(pidfile)  # one worker is in the middle of an evaluation
        assert len(pids) == 2 and all(alive(pid) for pid in pids)
    finally:
        master.kill()
        master.wait()
        master.stdout.close()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids):
        assert time.monotonic() < deadline, "orphaned workers outlived their master"
        time.sleep(0.05)


def test_a_replacement_dying_while_starting_costs_nothing(tmp_path):
    """Kill a busy worker, then its replacement 0.3 s later (while it starts): the candidate
    loses one attempt, the retry runs on the next replacement and the pool goes on."""
    with ProcessExecutor(SlowStart(1.5), workers=1) as executor:
        pidfile = tmp_path / "pid"
        executor.submit(1, f"hang {pidfile}")
        while not (pidfile.exists() and pidfile.read_text()):  # the master hands it over
            assert executor.wait(timeout=0.1) == []
        os.kill(pid_in(pidfile), signal.SIGKILL)
        assert collect(executor, 1)[1].lost
        executor.submit(1, "sleep 0")  # the search retries at once
        replacement = executor.pids()[0]
        time.sleep(0.3)
        os.kill(replacement, signal.SIGKILL)
        retried = collect(executor, 1)[1]
        assert retried.result is not None and replacement not in executor.pids()


def test_workers_that_never_start_end_the_pool():
    with ProcessExecutor(SlowStart(30.0), workers=1) as executor:
        executor.submit(1, "sleep 0")
        with pytest.raises(ExecutorLost, match="3 starts in a row of worker slot 0 failed"):
            for _ in range(3):
                time.sleep(0.2)
                os.kill(executor.pids()[0], signal.SIGKILL)
                executor.wait(timeout=5.0)


def test_the_timeout_does_not_count_the_workers_start_up():
    with ProcessExecutor(SlowStart(2.0), workers=1, timeout_s=1.0) as executor:
        executor.submit(1, "sleep 0.2")
        outcome = collect(executor, 1)[1]
    assert outcome.result is not None, outcome.error
