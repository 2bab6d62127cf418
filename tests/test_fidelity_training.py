"""Rungs with real training (digits, tiny networks): continuing from the saved weights
measures what one uninterrupted early stop measures; per-epoch curves; a search with rungs
in worker processes, killed mid-rung and resumed."""

from __future__ import annotations

import math

import pytest

from blockqnn import blocks
from blockqnn.config import SearchConfig, make_evaluator
from blockqnn.evaluation import Step
from blockqnn.execution import InlineExecutor, ProcessExecutor
from blockqnn.search import Search, create_run, open_run
from blockqnn.store import CandidateState
from blockqnn.train.evaluator import TrainingEvaluator

from .test_fidelity import StopAfter

ARCH = blocks.KNOWN["shortcut"]
#: The proxy recipe sized down for the 1,300-image digits: 3 epochs, a step after 2.
RECIPE = {"batch_size": 64, "lr": 0.01, "epochs": 3, "lr_step": 2}


@pytest.fixture(scope="module")
def evaluator(tmp_path_factory: pytest.TempPathFactory) -> TrainingEvaluator:
    cache = str(tmp_path_factory.mktemp("cache"))
    return TrainingEvaluator(
        dataset="digits",
        recipe="proxy",
        recipe_overrides=RECIPE,
        widths=(8, 16),
        repeats=1,
        cache_dir=cache,
    )


def test_rungs_continue_from_the_weights_to_the_plain_early_stop(evaluator, tmp_path):
    plain = evaluator.evaluate(ARCH)
    low = evaluator.evaluate_rung(ARCH, Step(0, 1, 0, None))
    top = evaluator.evaluate_rung(ARCH, Step(1, 3, 1, low.state, last=True))
    assert isinstance(low.state, bytes) and top.state is None  # none after the top rung
    assert [p["epoch"] for p in plain.curve] == [1, 2, 3]
    assert [p["epoch"] for p in low.curve] == [1] and [p["epoch"] for p in top.curve] == [2, 3]
    assert top.extra["continued_from"] == 1 and top.extra["epochs"] == 3
    assert top.accuracy == plain.accuracy  # same learning rates, generator and weights
    assert top.curve == plain.curve[1:] and low.curve == plain.curve[:1]
    assert all(0 < p["val_loss"] < 10 and 0 <= p["val_accuracy"] <= 100 for p in plain.curve)
    for name in ("flops", "params", "density"):  # latency is measured again, noisily
        assert top.metrics[name] == plain.metrics[name]


def test_a_missing_or_foreign_state_trains_again(evaluator, tmp_path):
    again = evaluator.evaluate_rung(ARCH, Step(1, 3, 1, None, last=True))
    assert again.extra["continued_from"] == 0 and [p["epoch"] for p in again.curve] == [1, 2, 3]
    foreign = evaluator.evaluate_rung(ARCH, Step(1, 3, 1, b"not a checkpoint", last=True))
    assert foreign.accuracy == again.accuracy and foreign.extra["continued_from"] == 0


def rung_config(evaluator: TrainingEvaluator, evaluations: int) -> SearchConfig:
    return SearchConfig(
        space="nsc",
        evaluations=evaluations,
        batch=3,
        seed=1,
        rungs=[1, 3],
        evaluator={"kind": "train", **evaluator.to_dict()},
    )


def check_finished(store, evaluations: int) -> None:
    candidates = store.candidates()
    assert sum(c.reused_from is None for c in candidates) == evaluations  # trainings
    assert all(c.state == CandidateState.COMPLETE for c in candidates)
    for c in candidates:
        if c.reused_from is not None:
            continue
        curve = store.curve(c.id)
        measured = c.reward is not None
        assert [p["epoch"] for p in curve] == ([1, 2, 3] if measured else [1])
        assert [p["rung"] for p in curve] == ([0, 1, 1] if measured else [0])
        assert all(math.isfinite(p["val_loss"]) for p in curve)
        assert store.rung_state(c.id) is None  # kept only in between
        assert c.reward is None or c.extra["continued_from"] == 1  # from its last rung


def test_search_with_rungs_in_worker_processes(evaluator, tmp_path):
    config = rung_config(evaluator, 6)
    store = create_run(tmp_path / "run", config)
    with store, ProcessExecutor(make_evaluator(config), workers=2) as executor:
        Search(store, config, executor).run()
        check_finished(store, 6)
        assert store.top(1) and store.top(1)[0].extra["continued_from"] == 1


def test_kill_after_a_promotion_and_resume_continues_from_the_weights(evaluator, tmp_path):
    config = rung_config(evaluator, 4)
    store = create_run(tmp_path / "run", config)
    with store, pytest.raises(KeyboardInterrupt):
        Search(store, config, StopAfter(InlineExecutor(make_evaluator(config)), 1)).run()
    store, config = open_run(tmp_path / "run")
    with store:
        promoted = store.candidates([CandidateState.RUNNING])
        assert [c.id for c in promoted] == [1]  # the first is always promoted
        assert store.rung_state(1) is not None
        Search(store, config, InlineExecutor(make_evaluator(config))).run()
        check_finished(store, 4)
        first = store.get(1)
        assert first.reward is not None and first.extra["continued_from"] == 1
