"""Multi-fidelity on Dask (a real cluster on 127.0.0.1, with workers that cannot see the
master's files) and the automatic prefetch depth."""

from __future__ import annotations

import os

import pytest
from distributed import Client

from blockqnn.config import make_evaluator
from blockqnn.execution.dask_cluster import AutoPrefetch, DaskExecutor
from blockqnn.search import Search, create_run
from blockqnn.store import CandidateState
from blockqnn.train.evaluator import TrainingEvaluator

from .helpers_dask import kill_group, local_cluster, start_scheduler, start_workers
from .test_fidelity import two_fidelity_config
from .test_fidelity_training import RECIPE, check_finished, rung_config


def test_auto_prefetch_queues_one_while_the_round_trip_matters():
    auto = AutoPrefetch()
    assert auto.depth == 1  # nothing measured: keep the workers busy
    auto.ended(at=10.0, seconds=2.0)
    auto.submitted(at=10.05)  # 50 ms to refill a slot: 2.5% of a 2 s evaluation
    assert auto.reaction_s == pytest.approx(0.05) and auto.depth == 1
    long = AutoPrefetch()
    for t in range(5):
        long.ended(at=100.0 * t, seconds=30.0)
        long.submitted(at=100.0 * t + 0.01)  # 10 ms of 30 s: no prefetch needed
    assert long.depth == 0


def test_auto_prefetch_keeps_its_depth_near_the_threshold():
    auto = AutoPrefetch(alpha=1.0)  # each measurement replaces the mean
    auto.ended(at=0.0, seconds=2.0)
    auto.submitted(at=0.03)  # 1.5% of the evaluation: queue one
    assert auto.depth == 1
    auto.ended(at=5.0, seconds=2.0)
    auto.submitted(at=5.01)  # 0.5%: below the tolerance, above a quarter of it
    assert auto.depth == 1
    auto.ended(at=9.0, seconds=2.0)
    auto.submitted(at=9.004)  # 0.2%: clearly small
    assert auto.depth == 0
    auto.ended(at=12.0, seconds=2.0)
    auto.submitted(at=12.01)  # 0.5% again: stays at 0
    assert auto.depth == 0


def test_slots_left_empty_measure_no_reaction():
    auto = AutoPrefetch()
    auto.ended(at=1.0, seconds=30.0)
    auto.waiting()  # the master had nothing to refill the slot with
    auto.submitted(at=60.0)  # a later submission answers no ended task
    assert auto.reaction_s is None
    auto.ended(at=61.0, seconds=30.0)
    auto.submitted(at=61.02)
    assert auto.reaction_s == pytest.approx(0.02) and auto.depth == 0


def test_rung_search_on_a_dask_cluster_with_auto_prefetch(tmp_path):
    config = two_fidelity_config(evaluations=24)
    with local_cluster(n_workers=2) as cluster:
        executor = DaskExecutor(cluster.scheduler_address, make_evaluator(config))
        assert executor.auto is not None and executor.slots == 2 * 2
        store = create_run(tmp_path / "run", config)
        with store:
            Search(store, config, executor).run()
            candidates = store.candidates()
            rungs = store.rung_results()
    assert executor.auto.duration_s is not None and executor.auto.reaction_s is not None
    assert all(c.state == CandidateState.COMPLETE for c in candidates)
    candidates = [c for c in candidates if c.reused_from is None]  # re-proposals are free
    assert len(candidates) == 24
    measured = {c.id for c in candidates if c.reward is not None}
    assert measured and {r.cid for r in rungs if r.rung == 1} == measured
    assert all(c.extra["estimate"]["rung"] == 0 for c in candidates if c.reward is None)


def test_rung_state_reaches_workers_that_cannot_read_the_run_directory(tmp_path):
    # the workers run as on other machines: the folder holding the master's run directory
    # is an empty read-only file system for them; each promoted candidate must still
    # continue from its last rung (its curve shows every epoch trained once, in order)
    evaluator = TrainingEvaluator(
        dataset="digits",
        recipe="proxy",
        recipe_overrides=RECIPE,
        widths=(8, 16),
        repeats=1,
        cache_dir=str(tmp_path / "cache"),
    )
    config = rung_config(evaluator, 4)
    master = tmp_path / "master"
    master.mkdir()
    scheduler, address = start_scheduler(tmp_path)
    workers = start_workers(address, 2, hide=master)
    try:
        with Client(address) as client:
            client.wait_for_workers(2, timeout=60)
            store = create_run(master / "run", config)
            assert client.run(os.path.exists, str(store.path)) == dict.fromkeys(
                client.scheduler_info()["workers"], False
            )
            with store:
                Search(store, config, DaskExecutor(address, make_evaluator(config))).run()
                check_finished(store, 4)
                assert any(c.reward is not None for c in store.candidates())  # promoted
    finally:
        kill_group(workers)
        kill_group(scheduler)
