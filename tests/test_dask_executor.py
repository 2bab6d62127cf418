"""The Dask executor on real schedulers and workers on 127.0.0.1: a search to its budget,
a worker killed mid-evaluation, the master killed and resumed, the scheduler lost and the
run resumed on a new one, a worker joining mid-run, and the worker environment.

Every search here uses the run's own evaluator (``make_evaluator`` of :func:`config`), so
another evaluator (e.g. training on ``digits``) is tested by changing :func:`config`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
from distributed import Client, LocalCluster

from blockqnn.config import SearchConfig
from blockqnn.execution.base import ExecutorLost
from blockqnn.execution.dask_cluster import (
    DaskExecutor,
    scheduler_address,
    worker_config,
    worker_slots,
)
from blockqnn.search import Progress, Search, create_run, open_run
from blockqnn.store import CandidateState, RunStore

from .conftest import ROOT, shared_file
from .helpers_dask import (
    RecordingExecutor,
    ThreadsEvaluator,
    Unloadable,
    completed,
    evaluator_for,
    kill_group,
    local_cluster,
    running_on,
    start_scheduler,
    start_workers,
)
from .helpers_exec import SlowStart

TABLE = shared_file("nb201", "cifar10_valid.csv")
SLEEP = 0.4  #: seconds per evaluation where a test must catch evaluations running


def config(**changes) -> SearchConfig:
    """The searches of this file: the evaluator under test and a small budget of
    candidates (duplicates counted, so a run holds exactly its budget)."""
    base = SearchConfig(
        space="nb201",
        evaluations=12,
        batch=4,
        seed=5,
        count_duplicates=True,
        evaluator={"kind": "tabular", "table": str(TABLE), "reward_column": "valid-accuracy"},
    )
    return replace(base, **changes)


def search(store: RunStore, cfg: SearchConfig, executor, progress=None) -> dict[str, int]:
    return Search(store, cfg, executor, progress=progress).run()


def assert_each_candidate_once(store: RunStore, budget: int) -> None:
    """The run holds exactly ``budget`` candidates, each complete, each with a result."""
    cands = store.candidates()
    assert [c.id for c in cands] == list(range(1, budget + 1))
    assert all(c.state == CandidateState.COMPLETE and c.reward is not None for c in cands)
    assert store.counts()["complete"] == budget


def once(action):
    """A progress callback that runs ``action(progress)`` once it returns True."""
    state = {"done": False}

    def callback(progress: Progress) -> None:
        if not state["done"]:
            state["done"] = bool(action(progress))

    return callback


@pytest.fixture
def cluster() -> Iterator[LocalCluster]:
    with local_cluster(n_workers=2) as cluster:
        yield cluster


def test_search_over_two_workers_ends_with_exactly_the_budget(tmp_path, cluster):
    cfg = config(evaluations=40, batch=10)
    dask = DaskExecutor(cluster.scheduler_address, evaluator_for(cfg), prefetch=0)
    executor = RecordingExecutor(dask)
    with create_run(tmp_path / "run", cfg) as store:
        counts = search(store, cfg, executor)
        assert counts["complete"] == 40
        assert_each_candidate_once(store, 40)
        evaluated = [c for c in store.candidates() if c.reused_from is None]
    assert set(executor.slot_readings) == {2}
    assert {o.worker for o in executor.outcomes} <= set(cluster.scheduler_info["workers"])
    assert len(executor.outcomes) == len(evaluated)
    table = evaluator_for(cfg)
    assert all(c.accuracy == table.evaluate(c.arch).accuracy for c in evaluated)
    with DaskExecutor(cluster.scheduler_address, table, prefetch=1) as queued:
        assert queued.slots == 4  # one more queued per slot


def kill_a_fresh_evaluation(client, executor, pids, stop) -> tuple[int, str] | None:
    """Once a result is in, SIGKILL the worker of an evaluation submitted less than
    SLEEP / 3 ago (so mid-evaluation, not ending); its candidate id and worker."""
    while not stop.wait(0.01):
        recent = time.monotonic() - SLEEP / 3
        for cid, worker in running_on(client).items():
            if executor.outcomes and executor.submitted.get(cid, 0) > recent:
                os.kill(pids[worker], signal.SIGKILL)
                return cid, worker
    return None


@pytest.mark.parametrize(("allowed_failures", "victim_attempts"), [(3, 1), (0, 2)])
def test_worker_killed_mid_evaluation(tmp_path, allowed_failures, victim_attempts):
    """Dask reruns the victim's task by itself (allowed-failures 3), or reports it lost
    (KilledWorker, allowed-failures 0) and the search retries it."""
    cfg = config()
    with (
        local_cluster(2, allowed_failures) as cluster,
        Client(cluster, set_as_default=False) as client,
        ThreadPoolExecutor(1) as killer,
    ):
        executor = RecordingExecutor(  # prefetch 0: a dead worker's queued task is lost too
            DaskExecutor(cluster.scheduler_address, evaluator_for(cfg, SLEEP), prefetch=0)
        )
        stop = threading.Event()
        kill = killer.submit(kill_a_fresh_evaluation, client, executor, client.run(os.getpid), stop)
        with create_run(tmp_path / "run", cfg) as store:
            try:
                search(store, cfg, executor)
            finally:
                stop.set()
            assert_each_candidate_once(store, cfg.evaluations)
            attempts = {c.id: c.attempts for c in store.candidates() if c.reused_from is None}
    victim = kill.result()
    assert victim is not None, "no evaluation was caught running"
    cid, worker = victim
    assert attempts[cid] == victim_attempts
    outcomes = [o for o in executor.outcomes if o.cid == cid]
    assert [o.lost for o in outcomes] == [True] * (victim_attempts - 1) + [False]
    assert outcomes[-1].result is not None and outcomes[-1].worker != worker
    others = sum(attempts.values()) - attempts[cid]
    assert others == len(attempts) - 1  # no other evaluation was lost


def driver(run_dir, address, log, cfg: SearchConfig | None = None) -> subprocess.Popen:
    """A master process running (or resuming) the search; its stderr goes to ``log``."""
    args = [sys.executable, "-m", "tests.helpers_dask", str(run_dir), address]
    args += ["--sleep", str(SLEEP)]
    if cfg is not None:
        args += ["--config", json.dumps(cfg.to_dict())]
    with open(log, "a") as stderr:
        return subprocess.Popen(args, cwd=ROOT, stderr=stderr)


def test_master_killed_and_resumed_against_the_same_cluster(tmp_path, cluster):
    cfg = config(evaluations=16)
    run_dir = tmp_path / "run"
    log = tmp_path / "master.log"
    master = driver(run_dir, cluster.scheduler_address, log, cfg)
    deadline = time.monotonic() + 60
    while completed(run_dir) < 4 and master.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    master.kill()
    master.wait()
    assert 4 <= completed(run_dir) < 16, "the master was not killed mid-run"
    resumed_at = time.time()
    resumed = driver(run_dir, cluster.scheduler_address, log)
    assert resumed.wait(timeout=60) == 0, log.read_text()
    store, _ = open_run(run_dir)
    with store:
        assert_each_candidate_once(store, 16)
        cands = store.candidates()
        assert any(c.created < resumed_at < c.started for c in cands), "none was in flight"
        trained = {c.attempts for c in cands if c.reused_from is None}
        assert trained == {1}  # the master's restart is no attempt


def test_scheduler_lost_then_resumed_on_a_new_scheduler(tmp_path):
    cfg = config()
    scheduler, address = start_scheduler(tmp_path)
    workers = start_workers(address, 2)
    try:
        with Client(address, set_as_default=False, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
            env = client.run(
                lambda: [os.environ.get(k) for k in ("MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS")]
            )
        assert list(env.values()) == [[None, "1"]] * 2

        def kill_scheduler(progress: Progress) -> bool:
            if progress.done >= 3:
                scheduler.kill()
            return progress.done >= 3

        executor = DaskExecutor(address, evaluator_for(cfg, SLEEP))
        with create_run(tmp_path / "run", cfg) as store:
            with pytest.raises(ExecutorLost, match=f"lost the Dask scheduler at {address}"):
                search(store, cfg, executor, once(kill_scheduler))
            counts = store.counts()
            assert store.get_meta("status") == "interrupted"
    finally:
        kill_group(scheduler)
        kill_group(workers)
    assert counts["complete"] >= 3 and counts["failed"] == 0
    assert counts["complete"] + counts["running"] + counts["pending"] < cfg.evaluations
    store, cfg = open_run(tmp_path / "run")
    with store, local_cluster(2) as cluster:
        executor = DaskExecutor(cluster.scheduler_address, evaluator_for(cfg))
        assert search(store, cfg, executor)["complete"] == cfg.evaluations
        assert_each_candidate_once(store, cfg.evaluations)


def test_a_worker_joining_mid_run_gets_work(tmp_path):
    cfg = config()
    with local_cluster(n_workers=1) as cluster, Client(cluster, set_as_default=False) as client:
        [first] = client.scheduler_info()["workers"]

        def add_worker(progress: Progress) -> bool:
            with worker_config():
                cluster.scale(2)
            client.wait_for_workers(2, timeout=60)
            return True

        executor = RecordingExecutor(  # prefetch 0: a dead worker's queued task is lost too
            DaskExecutor(cluster.scheduler_address, evaluator_for(cfg, SLEEP), prefetch=0)
        )
        with create_run(tmp_path / "run", cfg) as store:
            search(store, cfg, executor, once(add_worker))
            assert_each_candidate_once(store, cfg.evaluations)
    assert executor.slot_readings[0] == 1 and max(executor.slot_readings) == 2
    by_worker = Counter(o.worker for o in executor.outcomes)
    assert len(by_worker) == 2 and by_worker[first] < len(executor.outcomes)


def test_torch_runs_one_thread_in_workers():
    reports = []
    with (
        local_cluster(n_workers=1) as cluster,
        DaskExecutor(cluster.scheduler_address, ThreadsEvaluator()) as executor,
    ):
        for cid in (1, 2):  # the evaluator sets 3 threads each time
            executor.submit(cid, "x")
            while len(reports) < cid:
                reports += [o.result.extra for o in executor.wait(timeout=60)]
    assert reports == [{"threads": 1, "omp": "1"}] * 2


def test_workers_that_cannot_load_the_evaluator_stop_the_run(cluster):
    with DaskExecutor(cluster.scheduler_address, Unloadable()) as executor:
        executor.submit(1, "x")
        with pytest.raises(ExecutorLost, match="cannot load the evaluator: ImportError"):
            executor.wait(timeout=60)


def test_unreachable_scheduler_is_reported_at_once():
    start = time.monotonic()
    with pytest.raises(
        ExecutorLost, match=r"cannot connect to the Dask scheduler at tcp://127\.0\.0\.1:9 "
    ):
        DaskExecutor("dask://127.0.0.1:9", evaluator_for(config()), connect_timeout=1)
    assert time.monotonic() - start < 10


@pytest.mark.parametrize(
    ("given", "address"),
    [
        ("dask://10.0.0.1:8786", "tcp://10.0.0.1:8786"),
        ("tcp://node-3:8786", "tcp://node-3:8786"),
        ("tls://[::1]:8786", "tls://[::1]:8786"),
        ("127.0.0.1:8786", "tcp://127.0.0.1:8786"),
    ],
)
def test_scheduler_addresses(given, address):
    assert scheduler_address(given) == address


@pytest.mark.parametrize("bad", ["local", "http://host:80", "tcp://host", "tcp://:8786"])
def test_bad_scheduler_addresses(bad):
    with pytest.raises(ValueError, match="not a Dask scheduler address"):
        scheduler_address(bad)


def test_slots_count_threads_or_resources():
    gpu2 = {"nthreads": 4, "resources": {"GPU": 2}, "status": "running"}
    cpu = {"nthreads": 4, "resources": {}, "status": "running"}
    paused = {**gpu2, "status": "paused"}
    assert [worker_slots(w, {}) for w in (gpu2, cpu, paused)] == [4, 4, 0]
    assert [worker_slots(w, {"GPU": 1}) for w in (gpu2, cpu, paused)] == [2, 0, 0]
    assert worker_slots(gpu2, {"GPU": 0.5}) == 4


def test_cli_digits_training_search_over_the_cluster(tmp_path, cluster):
    """The real command: `blockqnn search --executor dask://...` trains on digits."""
    address = cluster.scheduler_address.replace("tcp://", "dask://")
    run_dir = tmp_path / "digits"
    args = [
        sys.executable, "-m", "blockqnn", "search", "--dataset", "digits", "-N", "1",
        "--widths", "4,8", "--epochs", "1", "--iterations", "2", "--batch", "4",
        "--executor", address, "--run-dir", str(run_dir), "--no-progress",
    ]  # fmt: skip
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    store, _ = open_run(run_dir)
    with store:
        assert_each_candidate_once(store, 8)
        assert all(c.metrics["flops"] > 0 and c.metrics["params"] > 0 for c in store.candidates())


def test_cli_reports_a_missing_scheduler(tmp_path):
    args = [
        sys.executable, "-m", "blockqnn", "search", "--space", "nb201", "--table", str(TABLE),
        "--reward-column", "valid-accuracy", "--evaluations", "4",
        "--executor", "tcp://127.0.0.1:9", "--run-dir", str(tmp_path / "r"), "--no-progress",
    ]  # fmt: skip
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2  # a setup error: refused before the run exists
    assert "cannot connect to the Dask scheduler at tcp://127.0.0.1:9" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "r").exists()


def test_the_timeout_counts_the_evaluation_not_the_workers_start_up(cluster):
    """A worker loads the evaluator (3 s here, as importing torch can take on a loaded
    machine) before it reports the start: a 2 s timeout does not count that."""
    with DaskExecutor(cluster.scheduler_address, SlowStart(3.0), timeout_s=2.0) as executor:
        executor.submit(1, "sleep 0.5")
        outcomes = []
        deadline = time.monotonic() + 60
        while not outcomes and time.monotonic() < deadline:
            outcomes = executor.wait(timeout=1.0)
    assert outcomes and outcomes[0].result is not None, outcomes
