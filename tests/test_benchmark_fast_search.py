"""benchmarks/fast_search.py in table mode end to end on the two-fidelity table: both arms
spend the same simulated budget, and the fast arm's best after a third of it is judged."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from .conftest import ROOT, load_benchmark, shared_file

HIGHEST_RERUNS = 94.46  # the best cell of the table's judge, test-accuracy-200ep-reruns


def test_both_arms_spend_the_budget_and_report_finals():
    table = shared_file("nb201", "cifar10_12ep_200ep.csv")
    command = [
        sys.executable, str(ROOT / "benchmarks" / "fast_search.py"), "--table", str(table),
        "--budget", "2400", "--seeds", "3",
    ]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True)
    lines = proc.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    assert set(summary) == {"standard", "fast", "fast_third"}
    assert summary["standard"]["evaluated"] == 200  # 2400 / 12: every candidate at 12 epochs
    # the fast arm trains fewer candidates: some of them on to 200 epochs at 188 each
    assert 2400 / 200 < summary["fast"]["evaluated"] < 200
    for judged in summary.values():
        assert 80 < judged["final"] <= HIGHEST_RERUNS
    # the default judge is the re-measured column neither arm searches on, and the default
    # agent (standard) is compared with each other judged name seed by seed
    assert "paired" not in summary["standard"]
    for name in ("fast", "fast_third"):
        diff, se = summary[name]["paired"]
        assert se >= 0
        assert f"paired standard - {name}: {diff:+.3f} +- {se:.3f} (3 seeds)" in lines
    matched = next(line for line in lines if line.startswith("fast matched"))
    assert "of 3 seeds" in matched


def test_cifar_arms_add_one_fast_arm_per_rung_list():
    bench = load_benchmark("fast_search")
    args = argparse.Namespace(epochs=9, fast_rungs=["3,9"])
    arms = bench.fast_arms(args)
    assert list(arms) == ["standard", "fast", "fast@3,9"]
    assert arms["standard"] is None
    assert arms["fast"].budgets == (1.0, 3.0, 9.0)  # what --rungs auto gives for 9 epochs
    assert arms["fast@3,9"].budgets == (3.0, 9.0)
    assert bench.judged_names(list(arms)) == [
        "standard", "fast", "fast_third", "fast@3,9", "fast@3,9_third",
    ]  # fmt: skip
    with pytest.raises(SystemExit, match="last rung must be --epochs 9"):
        bench.fast_arms(argparse.Namespace(epochs=9, fast_rungs=["1,3"]))
    with pytest.raises(SystemExit, match="--fast-rungs 9,3: rung budgets must be finite, positive"):
        bench.fast_arms(argparse.Namespace(epochs=9, fast_rungs=["9,3"]))


def test_a_fast_arm_is_also_judged_by_its_incumbent_at_a_third_of_the_budget():
    bench = load_benchmark("fast_search")

    def arm(best: str, incumbents: list) -> object:
        return bench.ArmResult(
            evaluated=3, best_arch=best, best_value=60.0, best_test=59.0, incumbents=incumbents
        )

    results = {
        "standard": arm("S", [(50.0, 40.0, "S")]),
        "fast": arm("C", [(10.0, 30.0, "A"), (33.0, 35.0, "B"), (34.0, 50.0, "C")]),
    }
    judged = bench.judged(results, budget=100.0)
    assert judged == {"standard": ("S", 59.0), "fast": ("C", 59.0), "fast_third": ("B", 35.0)}
    # nothing measured at the full budget by then: nothing to judge
    assert bench.judged(results, budget=20.0)["fast_third"] is None


@pytest.mark.parametrize(
    ("column", "who"),
    [("test-accuracy-12ep", "both arms"), ("test-accuracy-200ep", "the fast arm")],
)
def test_a_judge_column_an_arm_searches_on_is_refused(column, who):
    table = shared_file("nb201", "cifar10_12ep_200ep.csv")
    command = [
        sys.executable, str(ROOT / "benchmarks" / "fast_search.py"), "--table", str(table),
        "--judge-column", column,
    ]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and proc.stdout == ""
    assert proc.stderr.strip() == (
        f"--judge-column {column}: {who} searches on this column; "
        "judge on a column no arm sees (e.g. a re-measurement)"
    )
