"""Multi-fidelity search: the promotion rule, the reward calibration, and the search loop
with rungs on the two-fidelity NAS-Bench-201 table (real SQLite store, inline and process
executors): one reward per candidate, measured and estimated kept apart, resume in the
middle of a rung, a worker killed mid-rung."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from blockqnn.cli import main
from blockqnn.config import ConfigError, SearchConfig, make_evaluator
from blockqnn.evaluation import Result
from blockqnn.execution import InlineExecutor, ProcessExecutor
from blockqnn.fidelity import (
    Fate,
    Ladder,
    LinearMap,
    Rungs,
    expected_cost,
    fit_map,
    geometric_rungs,
)
from blockqnn.options import OptionError
from blockqnn.search import Search, create_run, open_run
from blockqnn.store import CandidateState, RungResult
from blockqnn.tabular import TabularEvaluator

from .conftest import shared_file
from .helpers_fidelity import DiesAtRungOne

TABLE = shared_file("nb201", "cifar10_12ep_200ep.csv")
LOW, HIGH = "test-accuracy-12ep", "test-accuracy-200ep"


# --- rules ------------------------------------------------------------------------------


def test_rungs_are_checked():
    for bad in [(12,), (12, 12), (0, 3), (9, 3)]:
        with pytest.raises(ValueError):
            Rungs(bad)
    with pytest.raises(ValueError, match="eta"):
        Rungs((1, 3), eta=1)
    with pytest.raises(ConfigError, match="rungs"):
        SearchConfig(rungs=[4, 2], evaluator={"kind": "train"})


def test_default_eta_is_the_budget_ratio():
    rungs = Rungs((1, 3, 12))
    assert [rungs.reduction(k) for k in (0, 1)] == [3, 4]
    assert Rungs((1, 3, 12), eta=2).reduction(1) == 2
    assert geometric_rungs(9).budgets == (1, 3, 9)
    assert geometric_rungs(12).budgets == (1, 4, 12)
    assert geometric_rungs(27, eta=3, minimum=3).budgets == (3, 9, 27)
    # each rung costs about what the one below costs: 1 + 1/3 * 2 + 1/9 * 6
    assert expected_cost(Rungs((1, 3, 9))) == pytest.approx(1 + 2 / 3 + 6 / 9)


def test_promotion_keeps_the_best_share_seen_at_the_rung():
    rungs = Rungs((1, 3))  # eta 3
    assert rungs.promotes(0, 50.0, [50.0])  # the first result always continues
    assert not rungs.promotes(0, 40.0, [40.0, 50.0])  # 2 seen: only the best
    assert rungs.promotes(0, 60.0, [40.0, 50.0, 60.0])
    assert not rungs.promotes(0, 50.0, [40.0, 50.0, 60.0])
    six = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0]  # floor(6 / 3) = 2 places
    assert [rungs.promotes(0, v, six) for v in six] == [False] * 4 + [True] * 2
    assert rungs.promotes(0, 50.0, [50.0, 50.0, 50.0])  # ties promote
    with pytest.raises(ValueError):
        rungs.promotes(1, 50.0, [50.0])  # nothing above the top


def test_ladder_decides_on_arrival_and_rebuilds_from_results():
    ladder = Ladder(Rungs((1, 3)))
    results = [RungResult(cid, 0, 1.0, acc, acc) for cid, acc in enumerate([50.0, 40.0, 70.0])]
    fates = []
    for result in results:
        fates.append(ladder.decide(0, result.reward))
        ladder.record(result)
    assert fates == [Fate.PROMOTED, Fate.STOPPED, Fate.PROMOTED]
    assert ladder.decide(1, 10.0) == Fate.MEASURED
    assert ladder.next_rung(0) == 1 and ladder.next_rung(7) == 0
    step = ladder.step(0, "/w/0.pt")
    assert (step.rung, step.budget, step.start, step.state, step.last) == (1, 3, 1, "/w/0.pt", True)
    again = Ladder.from_results(Rungs((1, 3)), results)
    assert again.decide(0, 60.0) == ladder.decide(0, 60.0) == Fate.STOPPED


# --- calibration ------------------------------------------------------------------------


def test_calibration_identity_then_offset_then_least_squares():
    assert fit_map([]) == LinearMap(1.0, 0.0, 0)
    offset = fit_map([(50.0, 60.0), (60.0, 66.0)])
    assert (offset.slope, offset.offset) == (1.0, 8.0)
    pairs = [(x, 0.5 * x + 40.0) for x in (40.0, 50.0, 60.0, 70.0, 80.0)]
    fitted = fit_map(pairs)
    assert fitted.slope == pytest.approx(0.5) and fitted.offset == pytest.approx(40.0)
    assert fitted(30.0) == pytest.approx(55.0)
    falling = [(x, 100.0 - x) for x in (40.0, 50.0, 60.0, 70.0, 80.0)]
    assert fit_map(falling).slope == 1.0  # a reversed ranking is never taught
    assert fit_map([(50.0, 60.0)] * 6).slope == 1.0  # no spread: offset only


def test_estimate_moves_the_rung_reward_by_the_accuracy_change():
    ladder = Ladder(Rungs((1, 3)))
    for cid, (low, high) in enumerate(
        [(40.0, 60.0), (50.0, 65.0), (60.0, 70.0), (70.0, 75.0), (80.0, 80.0)]
    ):
        ladder.record(RungResult(cid, 0, 1.0, low, low - 2.0))  # reward = accuracy - 2
        ladder.record(RungResult(cid, 1, 3.0, high, high - 2.0))
    accuracy, reward = ladder.estimate(RungResult(9, 0, 1.0, 30.0, 28.0))
    assert accuracy == pytest.approx(55.0)  # the line 0.5 x + 40
    assert reward == pytest.approx(53.0)


# --- the search loop with rungs ---------------------------------------------------------


def two_fidelity_config(**changes) -> SearchConfig:
    base = SearchConfig(
        space="nb201",
        evaluations=90,
        batch=10,
        seed=5,
        mu=0.0,
        rho=0.0,
        rungs=[12, 200],
        eta=3,
        evaluator={
            "kind": "tabular",
            "table": str(TABLE),
            "reward_column": HIGH,
            "test_column": HIGH,
            "rung_columns": [LOW, HIGH],
        },
    )
    return replace(base, **changes)


def search(tmp_path, config, executor=None, name="run"):
    store = create_run(tmp_path / name, config)
    with store:
        search = Search(store, config, executor or InlineExecutor(make_evaluator(config)))
        search.run()
        return store.candidates(), store.rung_results(), search.strategy


def test_each_candidate_tells_the_agent_once_measured_or_estimated(tmp_path):
    config = two_fidelity_config()
    candidates, rungs, strategy = search(tmp_path, config)
    table = TabularEvaluator(str(TABLE), HIGH, rung_columns=(LOW, HIGH))
    assert all(c.state == CandidateState.COMPLETE for c in candidates)
    evaluated = [c for c in candidates if c.reused_from is None]
    assert len(evaluated) == 90 and strategy.tells == 90  # duplicates are answered apart
    measured = [c for c in evaluated if c.reward is not None]
    stopped = [c for c in evaluated if c.reward is None]
    assert measured and len(stopped) > len(measured)  # most stop at 12 epochs
    for c in measured:  # measured: the high column, both rungs stored, cost 12 + 188
        assert c.accuracy == table.evaluate(c.arch).accuracy and c.cost_s == 200
        assert [r.rung for r in rungs if r.cid == c.id] == [0, 1]
    for c in stopped:  # stopped: no measured reward, the estimate kept apart
        assert c.accuracy is None and c.cost_s == 12
        estimate = c.extra["estimate"]
        assert estimate["rung"] == 0 and math.isfinite(estimate["reward"])
        assert [(r.rung, r.accuracy) for r in rungs if r.cid == c.id] == [(0, _low(c.arch))]
    store, _ = open_run(tmp_path / "run")
    with store:
        assert {c.id for c in store.top(1000)} == {c.id for c in measured}
        curve = store.curve(measured[0].id)
        assert [(p["epoch"], p["rung"]) for p in curve] == [(12, 0), (200, 1)]
        assert curve[1]["val_accuracy"] == measured[0].accuracy


def test_a_duplicate_of_a_stopped_candidate_is_answered_with_its_estimate(tmp_path):
    candidates, _, strategy = search(tmp_path, two_fidelity_config(evaluations=200))
    by_id = {c.id: c for c in candidates}
    evaluated = [c for c in candidates if c.reused_from is None]
    assert len({c.key for c in evaluated}) == len(evaluated)  # nothing is trained twice
    of_stopped = [c for c in candidates if c.reused_from and by_id[c.reused_from].reward is None]
    assert of_stopped  # the agent re-proposed stopped candidates
    for c in of_stopped:  # no measured reward; told the estimate the source was told
        assert c.reward is None and c.told == by_id[c.reused_from].extra["estimate"]["reward"]
    assert strategy.tells == len(evaluated)


def _low(arch: str) -> float:
    return TabularEvaluator(str(TABLE), LOW).evaluate(arch).accuracy


def test_stopped_candidates_are_told_the_calibrated_estimate(tmp_path):
    candidates, rungs, _ = search(tmp_path, two_fidelity_config())
    ladder = Ladder(Rungs((12, 200), eta=3))
    for r in rungs:  # replay in store order: each estimate uses the pairs known before it
        candidate = next(c for c in candidates if c.id == r.cid)
        if r.rung == 0 and candidate.reward is None:
            accuracy, reward = ladder.estimate(r)
            estimate = candidate.extra["estimate"]
            assert (estimate["accuracy"], estimate["reward"]) == pytest.approx((accuracy, reward))
        ladder.record(r)
    assert ladder.calibration(0).pairs >= 5 and ladder.calibration(0).slope != 1.0


class StopAfter:
    """An inline executor that raises KeyboardInterrupt after ``n`` outcomes, as a kill."""

    def __init__(self, inner: InlineExecutor, n: int) -> None:
        self.inner, self.n, self.slots = inner, n, inner.slots

    def submit(self, cid, arch, step=None):
        self.inner.submit(cid, arch, step)

    def wait(self, timeout=None):
        if self.n == 0:
            raise KeyboardInterrupt
        self.n -= 1
        return self.inner.wait(timeout)

    def close(self):
        self.inner.close()


@pytest.mark.parametrize("kill_after", [1, 7, 23])
def test_resume_in_the_middle_of_a_rung_matches_an_uninterrupted_run(tmp_path, kill_after):
    config = two_fidelity_config(evaluations=40)
    whole, whole_rungs, _ = search(tmp_path, config, name="whole")
    store = create_run(tmp_path / "cut", config)
    evaluator = make_evaluator(config)
    with store, pytest.raises(KeyboardInterrupt):
        Search(store, config, StopAfter(InlineExecutor(evaluator), kill_after)).run()
    store, config = open_run(tmp_path / "cut")
    with store:
        running = store.candidates([CandidateState.RUNNING])
        assert kill_after != 1 or running  # cut while the first one is promoted
        Search(store, config, InlineExecutor(evaluator)).run()
        resumed, resumed_rungs = store.candidates(), store.rung_results()
    assert [(c.arch, c.reward, c.extra) for c in resumed] == [
        (c.arch, c.reward, c.extra) for c in whole
    ]
    assert [(r.cid, r.rung, r.accuracy) for r in resumed_rungs] == [
        (r.cid, r.rung, r.accuracy) for r in whole_rungs
    ]


def test_a_worker_killed_mid_rung_is_retried_at_that_rung(tmp_path):
    config = two_fidelity_config(evaluations=12)
    inner = make_evaluator(config)
    evaluator = DiesAtRungOne(inner, str(tmp_path / "died"))
    with ProcessExecutor(evaluator, workers=2) as executor:
        candidates, rungs, _ = search(tmp_path, config, executor)
    assert (tmp_path / "died").exists()
    assert all(c.state == CandidateState.COMPLETE for c in candidates)
    retried = [c for c in candidates if c.attempts == 2]
    assert len(retried) == 1 and retried[0].reward is not None
    assert sorted(r.rung for r in rungs if r.cid == retried[0].id) == [0, 1]
    assert all(c.attempts == 1 for c in candidates if c.id != retried[0].id and not c.reused_from)


def test_plain_results_store_their_curve(tmp_path):
    config = two_fidelity_config(rungs=[], evaluations=3)
    store = create_run(tmp_path / "plain", config)
    with store:
        cid = store.add_candidate("a", "a", 0, None, None)
        curve = [{"epoch": e, "val_accuracy": 10.0 * e, "val_loss": 1.0 / e} for e in (1, 2)]
        store.complete(cid, Result(accuracy=20.0, curve=curve), 20.0, None)
        assert store.curve(cid) == [{**p, "rung": 0} for p in curve]
        assert store.rung_results() == []


def test_cli_search_with_rungs_then_show_curves_and_estimates(tmp_path, capsys):
    run_dir = str(tmp_path / "run")
    table = ["--table", str(TABLE), "--reward-column", HIGH, "--test-column", HIGH]
    rungs = ["--rung-columns", f"{LOW},{HIGH}", "--rungs", "12,200", "--eta", "3"]
    budget = ["--evaluations", "30", "--batch", "10", "--mu", "0", "--rho", "0"]
    argv = ["search", "--run-dir", run_dir, "--space", "nb201", *table, *rungs, *budget]
    assert main([*argv, "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert main(["show", run_dir, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["config"]["rungs"] == [12, 200] and shown["config"]["eta"] == 3
    rows = [r for r in shown["candidates"] if r["reused_from"] is None]
    measured = [r for r in rows if r["reward"] is not None]
    stopped = [r for r in rows if r["estimate"] is not None]
    assert measured and stopped and len(measured) + len(stopped) == 30
    assert rows[: len(measured)] == measured  # the measured ones rank first
    reached = f"rungs: 30 reached 12, {len(measured)} reached 200; {len(stopped)} stopped below"
    assert reached in printed
    assert [p["rung"] for p in measured[0]["curve"]] == [0, 1]
    assert main(["show", run_dir, "--curves", str(stopped[0]["id"])]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[1].split() == ["epoch", "rung", "val", "acc", "val", "loss"]
    assert text[2].split()[:3] == ["12", "0", f"{_low(stopped[0]['arch']):.2f}"]
    assert main(["show", run_dir, "--estimated", "--top", "100"]) == 0
    assert sum(
        line.split()[2].startswith("~") for line in capsys.readouterr().out.splitlines()[2:-1]
    ) == len(stopped)


def test_cli_rungs_auto_follow_the_recipe_and_prefetch_defaults_to_auto():
    from blockqnn.cli import build_parser
    from blockqnn.cli._search_args import run_options

    parse = build_parser().parse_args
    args = parse(["search", "--run-dir", "r", "--epochs", "9", "--rungs", "auto"])
    config = run_options(args).config()
    assert config.rungs == [1, 3, 9] and config.eta is None and args.prefetch == "auto"
    assert parse(["search", "--run-dir", "r", "--prefetch", "1"]).prefetch == 1
    paper = run_options(parse(["search", "--run-dir", "r", "--fidelity", "paper"])).config()
    assert paper.rungs == []  # the plain early stop stays the default
    table = ["search", "--run-dir", "r", "--space", "nb201", "--table", str(TABLE)]
    with pytest.raises(OptionError, match="auto"):
        run_options(parse([*table, "--reward-column", HIGH, "--rungs", "auto"])).config()


def test_resume_refuses_other_rungs_and_accepts_the_same(tmp_path, capsys):
    run_dir = str(tmp_path / "run")
    table = ["--space", "nb201", "--table", str(TABLE), "--reward-column", HIGH]
    rungs = ["--rung-columns", f"{LOW},{HIGH}", "--rungs", "12,200", "--eta", "3"]
    argv = ["search", "--run-dir", run_dir, *table, *rungs, "--evaluations", "10", "--no-progress"]
    assert main(argv) == 0
    assert main([*argv, "--resume"]) == 0  # the same options: accepted
    resume = ["search", "--run-dir", run_dir, "--resume", "--no-progress"]
    changed = ["--rungs", "6,200", "--eta", "2", "--rung-columns", f"{HIGH},{HIGH}"]
    capsys.readouterr()
    assert main([*resume, *changed]) == 2
    message = capsys.readouterr().err
    for part in ("--rungs 6,200 (run: 12,200)", "--eta 2 (run: 3)", f"--rung-columns {HIGH}"):
        assert part in message, message


def test_resume_reads_rungs_auto_as_the_runs_own_early_stop():
    from blockqnn.cli import build_parser
    from blockqnn.cli._search_args import run_options
    from blockqnn.resume import conflicts

    parse = build_parser().parse_args
    stored = run_options(
        parse(["search", "--run-dir", "r", "--epochs", "9", "--rungs", "auto"])
    ).config()
    again = parse(["search", "--run-dir", "r", "--resume", "--rungs", "auto"])
    assert conflicts(run_options(again), stored) == []
    other = parse(["search", "--run-dir", "r", "--resume", "--rungs", "1,9"])
    assert conflicts(run_options(other), stored) == ["--rungs 1,9 (run: 1,3,9)"]
