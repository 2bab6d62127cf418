"""benchmarks/fast_search.py in table mode end to end on the two-fidelity table: both arms
spend the same simulated budget, and the fast arm's best after a third of it is judged."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import ROOT, shared_file

HIGHEST_200EP = 94.47  # the best cell of the table's 200-epoch column


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
        assert 80 < judged["final"] <= HIGHEST_200EP
    matched = next(line for line in lines if line.startswith("fast matched"))
    assert "of 3 seeds" in matched
