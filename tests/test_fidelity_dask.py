"""Multi-fidelity on Dask (a real cluster on 127.0.0.1) and the automatic prefetch depth."""

from __future__ import annotations

import pytest

from blockqnn.config import make_evaluator
from blockqnn.execution.dask_cluster import AutoPrefetch, DaskExecutor
from blockqnn.search import Search, create_run
from blockqnn.store import CandidateState

from .helpers_dask import local_cluster
from .test_fidelity import two_fidelity_config


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
