"""benchmarks/custom_eval_overhead.py runs, and its two arms do the same work: a training
function running the recipe's loop measures exactly the built-in early stop's accuracy."""

from __future__ import annotations

import subprocess
import sys

from .conftest import ROOT


def test_custom_eval_overhead_runs_and_the_arms_agree():
    script = ROOT / "benchmarks" / "custom_eval_overhead.py"
    argv = ["--candidates", "1", "--rounds", "1", "--epochs", "1", "--npz-images", "200"]
    proc = subprocess.run(
        [sys.executable, str(script), *argv], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "identical accuracies: 1 of 1 evaluations" in proc.stdout, proc.stdout
    assert "custom / built-in wall time" in proc.stdout and "bytes" in proc.stdout
