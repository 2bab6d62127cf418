"""The search loop on the NAS-Bench-201 table: budget, dedupe, failures, determinism,
resume after SIGKILL of a real process, and the show/export commands."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from blockqnn import search as search_module
from blockqnn.config import ConfigError, SearchConfig
from blockqnn.evaluation import CONSTRAINT_PREFIX, ConstraintViolation, Result
from blockqnn.execution import InlineExecutor, Outcome
from blockqnn.search import Search, create_run, open_run
from blockqnn.store import CandidateState, StoreError
from blockqnn.tabular import TabularEvaluator

from .conftest import shared_file

TABLE = shared_file("nb201", "cifar10_valid.csv")
#: The Q agent without its model of the reward: it re-proposes evaluated cells often.
PLAIN = {"proposals": 1}


def nb201_config(**changes) -> SearchConfig:
    base = SearchConfig(
        space="nb201",
        evaluations=120,
        batch=20,
        seed=3,
        evaluator={
            "kind": "tabular",
            "table": str(TABLE),
            "reward_column": "valid-accuracy",
            "test_column": "test-accuracy",
        },
    )
    return replace(base, **changes)


def tabular(config):
    return TabularEvaluator(**{k: v for k, v in config.evaluator.items() if k != "kind"})


def run_search(tmp_path, config, name="run", executor=None):
    return run_search_with(tmp_path, config, executor or InlineExecutor(tabular(config)), name)


def run_search_with(tmp_path, config, executor, name="run"):
    with create_run(tmp_path / name, config) as store:
        Search(store, config, executor).run()
        return store.candidates()


def sequence(candidates):
    return [(c.arch, c.state.value, c.reward, c.reused_from) for c in candidates]


@pytest.mark.parametrize("strategy", ["qlearning", "random", "evolution"])
def test_run_ends_with_exactly_the_budget(tmp_path, strategy):
    cands = run_search(tmp_path, nb201_config(strategy=strategy))
    trained = [c for c in cands if c.reused_from is None]
    assert len(trained) == 120  # the budget buys trainings; re-proposals are free
    assert len({c.key for c in trained}) == 120
    assert all(c.state == CandidateState.COMPLETE for c in cands)
    row = TabularEvaluator(str(TABLE), "valid-accuracy", "test-accuracy").evaluate(cands[0].arch)
    assert cands[0].accuracy == row.accuracy and cands[0].test_accuracy == row.test_accuracy
    assert cands[0].reward == pytest.approx(row.accuracy)  # no FLOPs/density in the table


def test_duplicates_reuse_stored_results(tmp_path):
    # a greedy agent late in its schedule repeats itself: those repeats are not re-evaluated
    # (the plain agent: the default's model of the reward prefers unevaluated proposals)
    cands = run_search(tmp_path, nb201_config(evaluations=200, strategy_options=PLAIN))
    reused = [c for c in cands if c.reused_from is not None]
    assert reused, "expected the converging agent to propose duplicates"
    trained = [c.key for c in cands if c.reused_from is None]
    assert len(trained) == len(set(trained))
    for c in reused:
        source = next(s for s in cands if s.id == c.reused_from)
        assert (c.key, c.reward, c.accuracy) == (source.key, source.reward, source.accuracy)
        assert c.cost_s == 0


def test_duplicates_do_not_consume_the_budget(tmp_path):
    free = run_search(tmp_path, nb201_config(evaluations=200, strategy_options=PLAIN), "free")
    paper = nb201_config(evaluations=200, count_duplicates=True, strategy_options=PLAIN)
    counted = run_search(tmp_path, paper, "paper")
    assert len(counted) == 200  # the paper's accounting: every sampled block counts
    assert sum(c.reused_from is None for c in counted) < 200
    assert sum(c.reused_from is None for c in free) == 200
    assert len(free) > 200  # the re-proposals were answered without training


class LengthEvaluator:
    """Accuracy from the architecture text alone (no training)."""

    def evaluate(self, arch: str) -> Result:
        return Result(accuracy=float(len(arch) % 7 + 50))


@pytest.mark.parametrize("strategy", ["qlearning", "random", "evolution"])
def test_an_exhausted_space_ends_the_search_early(tmp_path, strategy):
    # max_index 2: one layer then the terminal, 8 blocks in all; a budget of 50 cannot be
    # spent, and the search must end once even random proposals only repeat
    config = SearchConfig(
        space="nsc",
        max_index=2,
        strategy=strategy,
        evaluations=50,
        batch=5,
        evaluator={"kind": "train"},
    )
    cands = run_search_with(tmp_path, config, InlineExecutor(LengthEvaluator()))
    trained = [c for c in cands if c.reused_from is None]
    assert len(trained) == 8
    assert len(cands) - len(trained) >= 2 * 50  # 2 x max_repeats duplicates in a row


def test_a_budget_over_the_distinct_cells_is_refused_up_front(tmp_path):
    with pytest.raises(ConfigError, match="15,626 exceed the 15,625 distinct architectures"):
        create_run(tmp_path / "run", nb201_config(evaluations=15_626))
    assert not (tmp_path / "run").exists()
    for allowed in ({"count_duplicates": True}, {"dedupe": False}):
        create_run(tmp_path / str(allowed), nb201_config(evaluations=15_626, **allowed)).close()


def test_the_loop_never_scans_the_table_per_proposal(tmp_path):
    # counts are kept as the loop changes them and look-ups use indexes: a running search
    # counts or scans the candidates only for the totals it returns, never per proposal
    # (the plain agent, which re-proposes often)
    config = nb201_config(evaluations=200, strategy_options=PLAIN)
    statements = []
    with create_run(tmp_path / "run", config) as store:
        search = Search(store, config, InlineExecutor(tabular(config)))
        store._connection().set_trace_callback(statements.append)
        search.run()
        reused = store.count_reused()
        plans = [
            row[-1]
            for text in {s for s in statements if s.startswith("SELECT")}
            for row in store._connection().execute(f"EXPLAIN QUERY PLAN {text}")
        ]
    assert reused > 200  # re-proposals were answered
    counting = [s for s in statements if "COUNT(" in s]
    assert len(counting) <= 3, counting  # once, for the counts run() returns
    assert len([p for p in plans if p.startswith("SCAN candidates")]) <= 2, plans


def test_dedupe_off_evaluates_again(tmp_path):
    cands = run_search(
        tmp_path, nb201_config(evaluations=200, dedupe=False, strategy_options=PLAIN)
    )
    assert all(c.reused_from is None for c in cands)
    assert len({c.key for c in cands}) < len(cands)


def test_same_seed_same_search(tmp_path):
    a = run_search(tmp_path, nb201_config(), "a")
    b = run_search(tmp_path, nb201_config(), "b")
    c = run_search(tmp_path, nb201_config(seed=4), "c")
    assert sequence(a) == sequence(b)
    assert sequence(a) != sequence(c)


class FlakyEvaluator:
    """Fails for every architecture whose first edge is 'none'."""

    def __init__(self, inner):
        self.inner = inner

    def evaluate(self, arch: str) -> Result:
        if arch.startswith("|none~0|"):
            raise RuntimeError("diverged: loss is NaN")
        return self.inner.evaluate(arch)


def test_failures_are_recorded_and_never_stop_the_search(tmp_path):
    config = nb201_config(evaluations=60, strategy="random")
    inner = TabularEvaluator(str(TABLE), "valid-accuracy")
    cands = run_search(tmp_path, config, executor=InlineExecutor(FlakyEvaluator(inner)))
    failed = [c for c in cands if c.state == CandidateState.FAILED]
    assert failed and len(cands) == 60
    assert all("diverged: loss is NaN" in c.error for c in failed)
    assert all(c.arch.startswith("|none~0|") for c in failed)


class LosingExecutor(InlineExecutor):
    """Reports the first ``losses`` outcomes of candidate 2 as lost workers."""

    def __init__(self, evaluator, losses):
        super().__init__(evaluator)
        self.losses = losses

    def wait(self, timeout=None):
        outcomes = super().wait(timeout)
        if outcomes and outcomes[0].cid == 2 and self.losses > 0:
            self.losses -= 1
            return [Outcome(2, error="worker died", lost=True)]
        return outcomes


@pytest.mark.parametrize(("losses", "state"), [(2, "complete"), (3, "failed")])
def test_lost_workers_are_retried_up_to_max_attempts(tmp_path, losses, state):
    config = nb201_config(evaluations=5, max_attempts=3)
    inner = TabularEvaluator(str(TABLE), "valid-accuracy")
    cands = run_search(tmp_path, config, executor=LosingExecutor(inner, losses))
    second = cands[1]
    assert second.state.value == state
    assert second.attempts == min(losses + 1, 3)
    assert len(cands) == 5


CLI = [sys.executable, "-m", "blockqnn"]


def search_args(run_dir, evaluations=400):
    return [
        *CLI, "search", "--space", "nb201", "--table", str(TABLE),
        "--reward-column", "valid-accuracy", "--test-column", "test-accuracy",
        "--evaluations", str(evaluations), "--batch", "50", "--seed", "7",
        "--run-dir", str(run_dir), "--no-progress",
    ]  # fmt: skip


def completed(run_dir) -> int:
    """Complete candidates in a run's database, read directly (0 before it exists)."""
    try:
        with sqlite3.connect(f"file:{run_dir / 'run.db'}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT count(*) FROM candidates WHERE state='complete'").fetchone()[
                0
            ]
    except sqlite3.Error:
        return 0


def kill_when(proc, run_dir, threshold) -> bool:
    """SIGKILL ``proc`` once the run has ``threshold`` complete candidates."""
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if completed(run_dir) >= threshold:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.005)
    return False


@pytest.mark.parametrize(
    ("options", "thresholds"),
    [
        # the plain agent re-proposes often: reused rows are replayed on resume too
        (["--option", "proposals=1"], (40, 300, 700, 1500)),
        # the default agent: its model of the reward is rebuilt from the saved memory
        ([], (40, 300, 600, 780)),
    ],
)
def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path, options, thresholds):
    budget = 800
    reference = tmp_path / "reference"
    subprocess.run(
        [*search_args(reference, budget), *options], check=True, capture_output=True, timeout=300
    )
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*search_args(killed, budget), *options], stderr=subprocess.PIPE)
    resume = [*CLI, "search", "--run-dir", str(killed), "--resume", "--no-progress"]
    kills = 0
    for threshold in thresholds:  # complete rows, reused ones included
        kills += kill_when(proc, killed, threshold)
        proc = subprocess.Popen(resume, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    assert kills == len(thresholds)
    ref_store, _ = open_run(reference)
    got_store, _ = open_run(killed)
    with ref_store, got_store:
        ref, got = ref_store.candidates(), got_store.candidates()
    assert sum(c.reused_from is None for c in got) == budget
    if thresholds[-1] > budget:
        assert len(got) > 1500  # re-proposals answered from stored results, for free
    assert sequence(got) == sequence(ref)


def test_show_json_and_export(tmp_path):
    run_dir = tmp_path / "run"
    subprocess.run(search_args(run_dir, 60), check=True, capture_output=True, timeout=120)
    out = subprocess.run([*CLI, "show", str(run_dir), "--json"], capture_output=True, text=True)
    data = json.loads(out.stdout)
    assert sum(c["reused_from"] is None for c in data["candidates"]) == 60
    first = data["candidates"][0]
    assert {"id", "codes", "arch", "state", "accuracy", "reward"} <= set(first)
    ranked = [c for c in data["candidates"] if c["rank"] is not None]
    assert [c["rank"] for c in ranked] == list(range(1, len(ranked) + 1))
    assert data["candidates"][: len(ranked)] == ranked  # the ranking comes first
    rewards = [c["reward"] for c in ranked]
    assert rewards == sorted(rewards, reverse=True)
    assert len({c["key"] for c in ranked}) == len(ranked)  # one row per architecture
    text = subprocess.run([*CLI, "show", str(run_dir)], capture_output=True, text=True).stdout
    assert first["arch"] in text
    target = tmp_path / "best.json"
    subprocess.run([*CLI, "export", str(run_dir), "--top", "3", "-o", str(target)], check=True)
    exported = json.loads(target.read_text())
    trained = [c["arch"] for c in data["candidates"] if c["reused_from"] is None]
    assert [b["arch"] for b in exported["blocks"]] == trained[:3]


def test_corrupt_and_foreign_runs_give_clear_errors(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "run.db").write_bytes(os.urandom(4096))
    proc = subprocess.run([*CLI, "show", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert f"{bad / 'run.db'}" in proc.stderr and "not a blockqnn run database" in proc.stderr
    with pytest.raises(StoreError, match=r"run\.db"):
        open_run(tmp_path / "missing")


def test_existing_run_is_never_overwritten(tmp_path):
    create_run(tmp_path / "run", nb201_config()).close()
    with pytest.raises(StoreError, match="already exists"):
        create_run(tmp_path / "run", nb201_config())


def test_unknown_config_field_is_refused():
    with pytest.raises(ValueError, match="unknown configuration field"):
        SearchConfig.from_dict({**nb201_config().to_dict(), "colour": "red"})


def test_bad_strategy_option_leaves_no_run(tmp_path):
    proc = subprocess.run(
        [*search_args(tmp_path / "run", 10), "--option", "alpha=7"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "alpha" in proc.stderr
    assert not (tmp_path / "run" / "run.db").exists()


def test_strategy_options_reach_the_agent(tmp_path):
    run_dir = tmp_path / "run"
    args = [*search_args(run_dir, 30), "--option", "alpha=0.5", "--option", "replay=8"]
    subprocess.run(args, check=True, capture_output=True, timeout=120)
    store, config = open_run(run_dir)
    with store:
        assert config.strategy_options == {"alpha": 0.5, "replay": 8, "preset": "default"}
        assert store.agent_state()["strategy"]["config"]["alpha"] == 0.5


def test_paper_switch_and_defaults_are_stored(tmp_path):
    subprocess.run([*search_args(tmp_path / "paper", 30), "--paper"], check=True, timeout=120)
    default_args = [a for a in search_args(tmp_path / "default", 30) if a not in ("--batch", "50")]
    subprocess.run(default_args, check=True, timeout=120)
    store, paper = open_run(tmp_path / "paper")
    store.close()
    store, default = open_run(tmp_path / "default")
    store.close()
    assert paper.strategy_options == {"preset": "paper"}
    assert (paper.mu, paper.rho, paper.count_duplicates, paper.batch) == (1.0, 8.0, True, 50)
    assert default.strategy_options == {"preset": "default"}
    assert (default.mu, default.rho, default.count_duplicates) == (0.0, 0.0, False)
    assert default.batch == 1  # budget 30 / 20 iterations, rounded down


def test_paper_switch_without_a_budget_is_the_papers_search():
    from blockqnn.cli import build_parser
    from blockqnn.cli._search_args import run_options

    args = build_parser().parse_args(["search", "--run-dir", "r", "--paper"])
    config = run_options(args).config()
    assert (config.evaluations, config.batch) == (178 * 64, 64)
    assert config.strategy_options == {"preset": "paper"}
    assert config.evaluator["recipe"] == "paper"  # the paper's 12-epoch early stop too
    given = build_parser().parse_args(
        ["search", "--run-dir", "r", "--paper", "--fidelity", "proxy"]
    )
    assert run_options(given).config().evaluator["recipe"] == "proxy"  # given: it overrides


def test_a_budget_inside_the_exploration_stage_warns(tmp_path, caplog):
    from blockqnn.cli import build_parser
    from blockqnn.cli._search_args import run_options

    args = ["search", "--run-dir", "r", "--paper", "--evaluations", "16"]
    with create_run(tmp_path / "paper16", run_options(build_parser().parse_args(args)).config()):
        pass
    assert "lies wholly in the exploration stage (epsilon 1)" in caplog.text
    assert "pure random search" in caplog.text
    caplog.clear()
    with create_run(tmp_path / "default", nb201_config()):
        pass
    assert "exploration stage" not in caplog.text


class WideExecutor(InlineExecutor):
    """Four slots: four candidates in flight at once, evaluated one per wait in submission
    order; raises KeyboardInterrupt (a master's Ctrl-C) at wait number ``stop_at``."""

    slots = 4

    def __init__(self, evaluator, stop_at=None):
        super().__init__(evaluator)
        self.waits, self.stop_at = 0, stop_at

    def wait(self, timeout=None):
        self.waits += 1
        if self.waits == self.stop_at:
            raise KeyboardInterrupt
        return super().wait(timeout)


def small_nsc_config(**changes) -> SearchConfig:
    """Eight blocks in all (one layer then the terminal): isomorphic proposals are common."""
    base = SearchConfig(
        space="nsc", max_index=2, strategy="random", evaluations=6, batch=2, seed=3,
        evaluator={"kind": "train"},
    )  # fmt: skip
    return replace(base, **changes)


def test_duplicates_of_a_candidate_in_flight_wait_for_its_result(tmp_path):
    cands = run_search_with(tmp_path, small_nsc_config(), WideExecutor(LengthEvaluator()))
    trained = [c for c in cands if c.reused_from is None]
    assert len(trained) == 6 and len({c.key for c in trained}) == 6  # nothing trained twice
    by_id = {c.id: c for c in cands}
    waited = [c for c in cands if c.reused_from and c.created < by_id[c.reused_from].finished]
    assert waited, "expected a proposal isomorphic to a candidate in flight"
    for c in waited:
        source = by_id[c.reused_from]
        assert (c.state, c.accuracy, c.reward) == (source.state, source.accuracy, source.reward)
        assert c.cost_s == 0


def test_resume_with_waiting_duplicates_matches_an_uninterrupted_run(tmp_path):
    config = small_nsc_config(evaluations=7)
    reference = run_search_with(tmp_path, config, WideExecutor(LengthEvaluator()), "ref")
    with create_run(tmp_path / "cut", config) as store:
        with pytest.raises(KeyboardInterrupt):
            Search(store, config, WideExecutor(LengthEvaluator(), stop_at=3)).run()
        assert store.waiting(), "expected a duplicate waiting when the master stopped"
    store, config = open_run(tmp_path / "cut")
    with store:
        Search(store, config, WideExecutor(LengthEvaluator())).run()
        assert sequence(store.candidates()) == sequence(reference)


class RefusingEvaluator:
    """Refuses (as the training evaluator does before training) every cell whose first
    edge is ``refuse`` (every cell when it is empty); evaluates the others on the table."""

    def __init__(self, refuse: str):
        self.inner = TabularEvaluator(str(TABLE), "valid-accuracy")
        self.refuse = refuse

    def evaluate(self, arch: str) -> Result:
        if arch.startswith(f"|{self.refuse}"):
            raise ConstraintViolation(f"{CONSTRAINT_PREFIX}flops 9 > 1 (checked before training)")
        return self.inner.evaluate(arch)


def test_refusals_before_training_do_not_use_up_the_budget(tmp_path):
    config = nb201_config(evaluations=60, strategy="random")
    cands = run_search(tmp_path, config, executor=InlineExecutor(RefusingEvaluator("none~0")))
    refused = [c for c in cands if c.state == CandidateState.FAILED]
    assert refused and all(c.error.startswith(CONSTRAINT_PREFIX) for c in refused)
    assert sum(c.state == CandidateState.COMPLETE and c.reused_from is None for c in cands) == 60


def test_a_run_that_refuses_everything_ends(tmp_path, caplog):
    config = nb201_config(evaluations=10, strategy="random")
    cands = run_search(tmp_path, config, executor=InlineExecutor(RefusingEvaluator("")))
    assert len(cands) == 20 and all(c.state == CandidateState.FAILED for c in cands)
    assert "10 candidates were refused by a constraint before training" in caplog.text


def test_the_search_checkpoints_its_log_into_the_database_file(tmp_path, monkeypatch):
    """Every CHECKPOINT_INTERVAL_S (here: after every result) the database file alone holds
    the run, so losing the write-ahead log of a killed master loses next to nothing."""
    monkeypatch.setattr(search_module, "CHECKPOINT_INTERVAL_S", 0.0)
    config = nb201_config(evaluations=20)
    evaluator = TabularEvaluator(**{k: v for k, v in config.evaluator.items() if k != "kind"})
    alone = tmp_path / "alone"
    alone.mkdir()
    with create_run(tmp_path / "run", config) as store:
        Search(store, config, InlineExecutor(evaluator)).run()
        shutil.copy(store.path, alone / "run.db")  # the file without its log, before close
    copy, _ = open_run(alone)
    with copy:
        assert sum(c.reused_from is None for c in copy.candidates()) == 20
