"""Real searches that train networks: digits with 2 worker processes, SIGKILL of the whole
search and --resume, and a CIFAR-10 subset from the shared archive."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from blockqnn.search import open_run
from blockqnn.store import CandidateState

from .conftest import shared_file
from .test_search import completed

CLI = [sys.executable, "-m", "blockqnn"]
TINY = ["-N", "1", "--widths", "4,8", "--epochs", "1", "--no-progress"]


def search(run_dir, *extra: str) -> list[str]:
    return [*CLI, "search", "--run-dir", str(run_dir), *TINY, *extra]


def check_every_candidate_once(run_dir, budget: int) -> None:
    store, _ = open_run(run_dir)
    with store:
        cands = store.candidates()
        assert store.get_meta("status") == "finished"
    assert sum(c.reused_from is None for c in cands) == budget  # re-proposals are free
    assert [c.id for c in cands] == list(range(1, len(cands) + 1))
    assert all(c.state == CandidateState.COMPLETE for c in cands)
    for c in cands:
        assert 0 <= c.accuracy <= 100 and all(
            c.metrics[m] > 0 for m in ("flops", "params", "density", "latency_ms")
        )


def test_sigkill_whole_search_and_resume_on_digits(tmp_path):
    run_dir, budget = tmp_path / "run", 24
    args = search(run_dir, "--dataset", "digits", "--iterations", "3", "--batch", "8")
    proc = subprocess.Popen([*args, "--workers", "2"], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while completed(run_dir) < 6 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store, _ = open_run(run_dir)
    with store:
        done_before = {c.id: c.reward for c in store.candidates([CandidateState.COMPLETE])}
    assert 6 <= len(done_before) < budget
    resume = [*CLI, "search", "--run-dir", str(run_dir), "--resume", "--no-progress"]
    subprocess.run(resume, check=True, capture_output=True, timeout=300)
    check_every_candidate_once(run_dir, budget)
    store, _ = open_run(run_dir)
    with store:
        after = {c.id: c.reward for c in store.candidates()}
    assert all(after[cid] == reward for cid, reward in done_before.items())


def test_tiny_search_on_cifar10_subset_completes(tmp_path):
    archive = shared_file("cifar10-jpg.tar.xz")
    run_dir = tmp_path / "cifar"
    args = search(
        run_dir, "--dataset", f"imagefolder:{archive}", "--subset", "300", "--image-size", "16",
        "--iterations", "2", "--batch", "3", "--workers", "2",
    )  # fmt: skip
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    check_every_candidate_once(run_dir, 6)
    shown = subprocess.run([*CLI, "show", str(run_dir), "--json"], capture_output=True, text=True)
    best = json.loads(shown.stdout)["candidates"][0]
    assert best["accuracy"] > 10  # above chance for 10 classes
    assert best["metrics"]["latency_ms"] > 0 and best["metrics"]["latency_batch_ms"] > 0
