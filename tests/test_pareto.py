"""Multi-objective search: objectives, the Pareto front, hypervolume, steering and
constraints (checked before training where they can be)."""

from __future__ import annotations

import json
import math
import random

import pytest

from blockqnn import cli
from blockqnn.config import ConfigError, SearchConfig
from blockqnn.evaluation import ConstraintViolation
from blockqnn.execution.factory import ExecutorSpec, make_executor
from blockqnn.pareto import Objective, dominates, front, gains, hypervolume, objectives
from blockqnn.reward import Term
from blockqnn.search import Search, create_run, open_run
from blockqnn.store import CandidateState
from blockqnn.tabular import TabularEvaluator
from tests.conftest import shared_file


def test_objectives_and_directions() -> None:
    objs = objectives(["accuracy", "latency", "params"])
    assert objs == (
        Objective("accuracy", True),
        Objective("latency_ms", False),
        Objective("params", False),
    )
    assert gains({"accuracy": 90.0, "latency_ms": 2.0, "params": 5}, objs) == (90.0, -2.0, -5.0)
    assert gains({"accuracy": 90.0}, objs) is None
    for bad in (["accuracy"], ["latency", "latency_ms"]):
        with pytest.raises(ValueError, match="two or more different objectives"):
            objectives(bad)


def test_front_matches_brute_force_and_keeps_order() -> None:
    rng = random.Random(0)
    for _ in range(300):
        dims = rng.choice([2, 3])
        points = [
            tuple(rng.choice([0.0, 1.0, 2.0, rng.random()]) for _ in range(dims))
            for _ in range(rng.randrange(25))
        ]
        brute = [p for p in points if not any(dominates(q, p) for q in points)]
        assert front(points, lambda p: p) == brute


def test_hypervolume_exact_values() -> None:
    assert hypervolume([(2.0, 1.0)], (0.0, 0.0)) == 2.0
    # two rectangles 3x1 and 1x3 overlapping in 1x1: 3 + 3 - 1
    assert hypervolume([(3.0, 1.0), (1.0, 3.0), (0.5, 0.5)], (0.0, 0.0)) == 5.0
    assert hypervolume([(1.0, 1.0, 1.0), (2.0, 0.5, 0.5)], (0.0, 0.0, 0.0)) == 1.0 + 0.25
    assert hypervolume([(-1.0, 5.0)], (0.0, 0.0)) == 0.0  # not above the reference


def nb201_config(**fields) -> SearchConfig:
    evaluator = {
        "kind": "tabular",
        "table": str(shared_file("nb201", "cifar10_valid.csv")),
        "reward_column": "valid-accuracy",
        "test_column": "test-accuracy",
        "metric_columns": {"eval_time_s": "test-per-time"},
    }
    base = {"space": "nb201", "evaluations": 60, "batch": 6, "seed": 3, "evaluator": evaluator}
    return SearchConfig(**{**base, **fields})


def test_steered_reward_is_drawn_per_iteration() -> None:
    config = nb201_config(objectives=["accuracy", "eval_time_s"], steer_weight=10.0)
    weights = [config.reward_for(i).terms["eval_time_s"].weight for i in range(50)]
    assert all(0 <= w <= 10 for w in weights) and len(set(weights)) == 50
    assert weights == [nb201_config(**config.to_dict()).reward_for(i).terms["eval_time_s"].weight
                       for i in range(50)]  # fmt: skip
    assert "eval_time_s" not in nb201_config().reward_for(3).terms
    with pytest.raises(ConfigError, match="invalid objectives"):
        nb201_config(objectives=["accuracy"])


def run(tmp_path, config: SearchConfig):
    with create_run(tmp_path / "run", config) as store:
        Search(store, config, make_executor(ExecutorSpec(), config)).run()
    return tmp_path / "run"


def test_constraints_fail_candidates_and_show_pareto_lists_the_front(tmp_path, capsys) -> None:
    limit = 1.3
    config = nb201_config(
        objectives=["accuracy", "eval_time_s"], constraints={"eval_time_s": limit}
    )
    run_dir = run(tmp_path, config)
    store, _ = open_run(run_dir)
    with store:
        cands = store.candidates()
    failed = [c for c in cands if c.state == CandidateState.FAILED]
    done = [c for c in cands if c.state == CandidateState.COMPLETE]
    assert sum(c.reused_from is None for c in cands) == 60 and failed and done
    table = TabularEvaluator(**{k: v for k, v in config.evaluator.items() if k != "kind"})
    for c in failed:
        time = table.evaluate(c.arch).metrics["eval_time_s"]
        assert c.error == f"constraint violated: eval_time_s {time:.4g} > {limit:.4g}"
    assert all(c.metrics["eval_time_s"] <= limit for c in done)
    # the rejected candidates were told to the agent (penalised), not dropped
    trained = [c for c in done if c.reused_from is None]
    objs = objectives(config.objectives)
    expected = {c.id for c in front(trained, lambda c: gains(c.named(), objs))}

    assert cli.main(["show", str(run_dir), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (
        shown["pareto"]
        == {
            "objectives": ["accuracy", "eval_time_s"],
            "ids": shown["pareto"]["ids"],
        }
        and set(shown["pareto"]["ids"]) == expected
    )
    assert cli.main(["show", str(run_dir), "--pareto"]) == 0
    text = capsys.readouterr().out
    assert f"Pareto front of accuracy, eval_time_s: {len(expected)} candidate(s)" in text
    rows = [line.split() for line in text.splitlines()[4:]]  # header, reward, title, columns
    assert {int(r[1]) for r in rows} == expected
    accuracies = [float(r[3]) for r in rows]
    assert accuracies == sorted(accuracies, reverse=True)  # by the first objective


def test_resume_after_rejections_continues_exactly(tmp_path) -> None:
    config = nb201_config(objectives=["accuracy", "eval_time_s"], constraints={"eval_time_s": 1.3})
    whole = run(tmp_path / "a", config)
    with create_run(tmp_path / "b" / "run", config) as store:
        search = Search(store, config, make_executor(ExecutorSpec(), config))
        # stop after 25 candidates, as a kill would (the loop reads the budget from here)
        search.config = SearchConfig(**{**config.to_dict(), "evaluations": 25})
        search.run()
    store, resumed_config = open_run(tmp_path / "b" / "run")
    with store:
        Search(store, resumed_config, make_executor(ExecutorSpec(), resumed_config)).run()
    archs = []
    for path in (whole, tmp_path / "b" / "run"):
        s, _ = open_run(path)
        with s:
            archs.append([(c.arch, c.state, c.reward) for c in s.candidates()])
    assert archs[0] == archs[1]


def test_pareto_needs_objectives(tmp_path, capsys) -> None:
    run_dir = run(tmp_path, nb201_config(evaluations=6))
    assert cli.main(["show", str(run_dir), "--pareto"]) == 2
    assert "--pareto needs --objectives" in capsys.readouterr().err
    assert cli.main(["show", str(run_dir), "--pareto", "--objectives", "accuracy,eval_time_s"]) == 0


def test_cheap_constraints_fail_before_training(tmp_path) -> None:
    from blockqnn.train.evaluator import TrainingEvaluator

    evaluator = TrainingEvaluator(widths=(8, 16), repeats=1, limits={"flops": 1e-9})
    with pytest.raises(ConstraintViolation, match=r"flops .* > 1e-09 \(checked before training\)"):
        evaluator.evaluate("(1,1,3,0,0) (2,7,0,0,0)")
    slow = TrainingEvaluator(widths=(8, 16), repeats=1, limits={"latency_ms": 1e-6})
    with pytest.raises(ConstraintViolation, match="latency_ms"):
        slow.evaluate("(1,1,3,0,0) (2,7,0,0,0)")


def test_cli_constraint_options(tmp_path) -> None:
    from blockqnn.cli._search_args import run_options

    parser = cli.build_parser()
    args = parser.parse_args([
        "search", "--run-dir", str(tmp_path), "--dataset", "digits", "--max-flops", "0.5",
        "--max-latency-ms", "3", "--objectives", "accuracy,latency",
        "--reward-term", "latency_ms=2", "--reward-term", "params=0.5:1e5",
    ])  # fmt: skip
    config = run_options(args).config()
    assert config.constraints == {"flops": 0.5, "latency_ms": 3.0}
    assert config.evaluator["limits"] == config.constraints
    assert config.objectives == ["accuracy", "latency"]
    assert math.isclose(config.steer_weight, 10.0)
    assert config.reward_terms == {
        "latency_ms": {"weight": 2.0},
        "params": {"weight": 0.5, "reference": 1e5},
    }
    assert config.reward.terms["params"] == Term(0.5, 1e5)
    with pytest.raises(SystemExit):
        parser.parse_args(["search", "--run-dir", "x", "--reward-term", "latency_ms"])


def test_constraint_failures_from_workers_are_told_to_the_agent(tmp_path) -> None:
    limits = {"flops": 1e-9}
    evaluator = {"kind": "train", "widths": [4, 8], "repeats": 1, "limits": limits}
    config = SearchConfig(evaluations=4, batch=2, constraints=limits, evaluator=evaluator)
    with create_run(tmp_path / "run", config) as store:
        Search(store, config, make_executor(ExecutorSpec(workers=0), config)).run()
        cands, state = store.candidates(), store.agent_state()
    # refused before training: the first 4 (the budget) are free, the next 4 count
    assert [c.state for c in cands] == [CandidateState.FAILED] * 8
    assert all(c.error.startswith("constraint violated: flops ") for c in cands)
    assert all("(checked before training)" in c.error for c in cands)
    assert [reward for _, reward in state["logs"]["memory"]] == [0.0] * 8  # the penalty
