"""Files written whole or not at all: a write that fails (a full disk, here a file size
limit set with ``RLIMIT_FSIZE``, which makes the kernel refuse the write as a full disk
would) leaves the old file, no temporary file, and one line naming the file."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from blockqnn import nsc
from blockqnn.config import SearchConfig
from blockqnn.data import load_dataset
from blockqnn.evaluation import Result
from blockqnn.files import WriteError, write_text
from blockqnn.search import create_run
from blockqnn.store import RunStore

SHORTCUT = "(1,4,0,0,0) (2,1,3,1,0) (3,1,3,2,0) (4,5,0,1,3) (5,7,0,0,0)"
OLD = "the previous file\n"


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A finished digits run whose best block is ``shortcut`` (no training needed)."""
    options = {"kind": "train", "dataset": "digits", "repeats": 1, "widths": [8, 8]}
    run = tmp_path / "run"
    with create_run(run, SearchConfig(evaluations=1, evaluator=options)) as store:
        cid = store.add_candidate(SHORTCUT, nsc.canonical_key(nsc.parse(SHORTCUT)), 0, 1.0, None)
        store.complete(cid, Result(accuracy=50.0, extra={"repeats": 1}), 50.0, None)
    load_dataset("digits")  # cached now, so the children only read it
    return run


def limited(max_bytes: int):
    """A child's set-up: no file may grow past ``max_bytes`` (writes past it fail with
    EFBIG instead of killing the process with SIGXFSZ)."""

    def setup() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    return setup


def blockqnn_limited(max_bytes: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "blockqnn", *args],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limited(max_bytes),
    )


@pytest.mark.parametrize(
    ("command", "name"),
    [
        (["report", "{run}", "-o", "{out}"], "report.html"),
        (["export", "{run}", "--format", "json", "-o", "{out}"], "best.json"),
        (["export", "{run}:top1", "--format", "py", "-o", "{out}"], "net.py"),
        (["export", "{run}:top1", "--format", "torchscript", "-o", "{out}"], "net.pt"),
    ],
)
def test_a_write_that_fails_keeps_the_old_file(run_dir, tmp_path, command, name):
    out = tmp_path / "out" / name
    out.parent.mkdir()
    out.write_text(OLD)
    argv = [arg.format(run=run_dir, out=out) for arg in command]
    # a reader holding the run keeps its -wal/-shm files, which the child need not grow
    with RunStore.open(run_dir):
        proc = blockqnn_limited(512, *argv)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert "Traceback" not in proc.stderr and len(errors) == 1, proc.stderr
    assert str(out) in errors[0] and "File too large" in errors[0]
    assert out.read_text() == OLD
    assert sorted(p.name for p in out.parent.iterdir()) == [name]  # no temporary file left


def test_write_text_replaces_whole_and_names_the_file_on_failure(tmp_path):
    path = tmp_path / "a.txt"
    write_text(path, "one")
    write_text(path, "two")
    assert path.read_text() == "two" and os.listdir(tmp_path) == ["a.txt"]
    with pytest.raises(WriteError, match=r"nowhere/a.txt: cannot write it \(No such file"):
        write_text(tmp_path / "nowhere" / "a.txt", "three")
