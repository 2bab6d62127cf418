"""Every script in examples/ runs (with a small budget) and the run it makes is a run the
command line reads, so none goes stale."""

from __future__ import annotations

import subprocess
import sys

import pytest

from blockqnn import cli

from .conftest import ROOT

#: Script -> a line its output must hold.
EXAMPLES = {
    "search_digits.py": "top1 network:",
    "own_arrays.py": "validation accuracy",
    "torch_dataset.py": "reward",
    "own_training.py": "of a budget of 2 evaluations",
    "dask_cluster.py": "of a budget of 2 evaluations",
}


def test_every_example_is_tested():
    assert sorted(p.name for p in (ROOT / "examples").glob("*.py")) == sorted(EXAMPLES)


@pytest.mark.parametrize("script", sorted(EXAMPLES))
def test_example_runs(tmp_path, script):
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), str(run_dir), "2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert EXAMPLES[script] in proc.stdout, proc.stdout
    assert cli.main(["show", str(run_dir)]) == 0
