"""benchmarks/zero_cost.py: zero-cost scores at initialisation against a finished run's
measured accuracies (the evidence for or against a pre-filter)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import torch
from scipy.stats import spearmanr

from blockqnn import blocks, cli
from blockqnn.model import build, cifar
from blockqnn.store import RunStore

from .conftest import ROOT, load_benchmark

DIGITS = ["search", "--dataset", "digits", "--epochs", "2", "-N", "1", "--widths", "8,8,8",
          "--strategy", "random", "--evaluations", "8", "--no-progress"]  # fmt: skip


def test_naswot_needs_distinct_activation_patterns_and_gradients_flow():
    bench = load_benchmark("zero_cost")
    torch.manual_seed(0)
    config = cifar(widths=(8, 8, 8), repeats=1, num_classes=10, in_channels=3, image_size=8)
    network = build(blocks.KNOWN["shortcut"], config).train()
    y = torch.arange(8) % 10
    distinct = bench.scores_at_init(network, torch.randn(8, 3, 8, 8), y)
    assert math.isfinite(distinct["naswot"]) and distinct["grad_norm"] > 0
    assert distinct["params"] == sum(p.numel() for p in network.parameters())
    network.zero_grad()
    same = bench.scores_at_init(network, torch.randn(1, 3, 8, 8).expand(8, 3, 8, 8), y)
    assert same["naswot"] == -math.inf  # eight identical rows: a singular kernel


def test_spearman_of_each_score_over_a_finished_training_run(tmp_path):
    run = tmp_path / "run"
    assert cli.main([*DIGITS, "--run-dir", str(run)]) == 0
    command = [sys.executable, str(ROOT / "benchmarks" / "zero_cost.py"), str(run)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True)
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    with RunStore.open(run) as store:
        measured = [c for c in store.candidates() if c.accuracy is not None and not c.reused_from]
    assert summary["candidates"] == len(measured) >= 2
    assert set(summary["spearman"]) == {"grad_norm", "snip", "naswot", "params", "1 epoch"}
    # the parameter count is the one the evaluator stored for each candidate
    params = [c.metrics["params"] for c in measured]
    expected = spearmanr(params, [c.accuracy for c in measured])[0]
    assert math.isclose(summary["spearman"]["params"], expected, abs_tol=1e-9)
