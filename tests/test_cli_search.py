"""``blockqnn search`` as a user meets it: the run's network in ``train``, the run lock,
checks before a run exists, positive counts, retries and timeouts, resume with the stored
configuration, user errors without tracebacks, the closing summary and the help text."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from blockqnn import cli, nsc
from blockqnn.cli._search_args import run_options
from blockqnn.config import DEFAULT_EVALUATIONS, PAPER_EVALUATIONS, SearchConfig, make_space
from blockqnn.evaluation import Result, format_metric
from blockqnn.execution import InlineExecutor, Outcome, ProcessExecutor
from blockqnn.runlock import RunLock
from blockqnn.search import Search, create_run, new_strategy, open_run
from blockqnn.store import StoreError
from blockqnn.tabular import TabularEvaluator

from .conftest import shared_file
from .helpers_exec import ScriptEvaluator

ROOT = Path(__file__).resolve().parents[1]

TABLE = shared_file("nb201", "cifar10_valid.csv")
CLI = [sys.executable, "-m", "blockqnn"]
NB201 = ["search", "--space", "nb201", "--table", str(TABLE), "--reward-column",
         "valid-accuracy", "--test-column", "test-accuracy", "--no-progress"]  # fmt: skip
#: A digits search as small as it gets (seconds per candidate).
DIGITS = ["search", "--dataset", "digits", "--epochs", "1", "-N", "1", "--widths", "8,8,8",
          "--no-progress"]  # fmt: skip


def blockqnn(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    """The real command in a child process (``env``: environment changes)."""
    environment = {**os.environ, **env}
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, env=environment
    )


def one_line_error(proc_or_err) -> str:
    """The single stderr line of a refused command (fails on a traceback)."""
    err = proc_or_err if isinstance(proc_or_err, str) else proc_or_err.stderr
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and len(lines) == 1, err
    return lines[0]


def refused(capsys, argv: list[str]) -> str:
    """Run ``blockqnn ARGV`` in-process; assert exit status 2; the one-line message."""
    try:
        status = cli.main(argv)
    except SystemExit as exc:  # argparse's own errors
        status = exc.code
    assert status == 2
    err = capsys.readouterr().err
    return err.strip().splitlines()[-1] if "usage:" in err else one_line_error(err)


def build_search_args(argv: list[str]):
    """The parsed command line (argparse's namespace) of ``blockqnn ARGV``."""
    return cli.build_parser().parse_args(argv)


# --- 1. train takes the run's network ------------------------------------------------------


def fake_training_run(run_dir: Path, **evaluator) -> None:
    """A finished NSC run whose best block is ``shortcut`` (no training needed)."""
    options = {"kind": "train", "dataset": "digits", "repeats": 1, "widths": [8, 8, 8]}
    with create_run(run_dir, SearchConfig(evaluations=1, evaluator={**options, **evaluator})) as s:
        arch = "(1,4,0,0,0) (2,1,3,1,0) (3,1,3,2,0) (4,5,0,1,3) (5,7,0,0,0)"
        cid = s.add_candidate(arch, nsc.canonical_key(nsc.parse(arch)), 0, 1.0, None)
        s.complete(cid, Result(accuracy=50.0, extra={"repeats": 1}), 50.0, None)


def test_train_uses_the_network_the_run_searched(tmp_path, capsys):
    fake_training_run(tmp_path / "run", image_size=6)
    out_dir = tmp_path / "final"
    argv = ["train", "--block", f"{tmp_path / 'run'}:top1", "--epochs", "1", "--out", str(out_dir)]
    assert cli.main([*argv, "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "N=1, widths 8,8,8" in printed and "1x6x6" in printed
    network = json.loads((out_dir / "metrics.json").read_text())["network"]
    assert (network["repeats"], network["widths"], network["image_size"]) == (1, [8, 8, 8], 6)
    # an option given overrides the run's value
    argv = [*argv[:-1], str(tmp_path / "final2"), "-N", "2", "--no-progress"]
    assert cli.main(argv) == 0
    assert json.loads((tmp_path / "final2" / "metrics.json").read_text())["network"]["repeats"] == 2


def test_train_needs_a_dataset_without_a_run(capsys):
    message = refused(capsys, ["train", "--block", "shortcut", "--epochs", "1", "--out", "x"])
    assert "--dataset" in message


# --- 2. one writer per run -----------------------------------------------------------------


def test_a_second_writer_is_refused_and_readers_still_work(tmp_path):
    run_dir = tmp_path / "run"
    assert blockqnn(*NB201, "--evaluations", "20", "--run-dir", str(run_dir)).returncode == 0
    with RunLock(run_dir):  # as a running search holds it
        proc = blockqnn("search", "--resume", "--run-dir", str(run_dir), "--no-progress")
        assert proc.returncode == 2
        message = one_line_error(proc)
        assert f"process {os.getpid()} on host {socket.gethostname()}" in message
        assert blockqnn("show", str(run_dir)).returncode == 0
        new = blockqnn(*NB201, "--run-dir", str(run_dir))
        assert new.returncode == 2 and "--resume" in one_line_error(new)


def test_a_killed_search_shows_as_stopped_not_running(tmp_path, capsys):
    from blockqnn.report.data import run_data

    run_dir = tmp_path / "run"
    evaluator = {"kind": "tabular", "table": str(TABLE), "reward_column": "valid-accuracy"}
    with create_run(run_dir, SearchConfig(space="nb201", evaluator=evaluator)) as store:
        store.set_meta("status", "running")  # what a search killed by SIGKILL leaves

    def statuses() -> tuple[str, str]:
        assert cli.main(["show", str(run_dir), "--json"]) == 0
        return json.loads(capsys.readouterr().out)["status"], run_data(run_dir)["status"]

    assert statuses() == ("stopped (no search holds the lock)",) * 2
    with RunLock(run_dir):  # as a live search holds it
        assert statuses() == ("running", "running")


def test_a_killed_holders_lock_does_not_block_resume(tmp_path):
    run_dir = tmp_path / "run"
    assert blockqnn(*NB201, "--evaluations", "20", "--run-dir", str(run_dir)).returncode == 0
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from blockqnn.runlock import RunLock; "
         f"RunLock({str(run_dir)!r}).acquire(); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout.readline().strip() == "held"
    assert blockqnn("search", "--resume", "--run-dir", str(run_dir)).returncode == 2
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    proc = blockqnn("search", "--resume", "--run-dir", str(run_dir), "--no-progress")
    assert proc.returncode == 0, proc.stderr


@pytest.fixture
def read_only_media(tmp_path):
    """A tmpfs mount point; ``remount()`` makes it read-only (skips without permission)."""
    mount = tmp_path / "media"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "none", str(mount)], capture_output=True).returncode:
        pytest.skip("needs permission to mount a tmpfs (root with CAP_SYS_ADMIN)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_readers_work_on_read_only_media_and_writers_are_refused(read_only_media):
    run_dir = read_only_media / "run"
    assert blockqnn(*NB201, "--evaluations", "20", "--run-dir", str(run_dir)).returncode == 0
    remount = ["mount", "-o", "remount,ro", str(read_only_media)]
    subprocess.run(remount, check=True)
    shown = blockqnn("show", str(run_dir), "--json")
    assert shown.returncode == 0, shown.stderr
    shown = json.loads(shown.stdout)["candidates"]
    assert sum(c["reused_from"] is None for c in shown) == 20
    proc = blockqnn("search", "--resume", "--run-dir", str(run_dir))
    assert proc.returncode == 2 and "Read-only file system" in one_line_error(proc)
    new = blockqnn(*NB201, "--run-dir", str(read_only_media / "other"))
    assert new.returncode == 2 and "is not writable" in one_line_error(new)


def test_deleting_the_run_directory_stops_the_search(tmp_path):
    run_dir = tmp_path / "run"
    command = [*CLI, *NB201, "--evaluations", "5000", "--workers", "1", "--run-dir", str(run_dir)]
    search = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not complete_candidates(run_dir) >= 4:
            assert search.poll() is None and time.monotonic() < deadline, search.stderr.read()
            time.sleep(0.05)
        shutil.rmtree(run_dir)
        run_dir.mkdir()  # someone else's directory now: the stopping search leaves it be
        (run_dir / "theirs").write_text("kept")
        out, err = search.communicate(timeout=60)
    finally:
        search.kill()
    assert search.returncode == 2 and "next:" not in out
    assert (run_dir / "theirs").read_text() == "kept"
    assert "was removed or replaced while this process had it open" in one_line_error(err)


def complete_candidates(run_dir: Path) -> int:
    """How many candidates a running search has completed (0 before its run exists)."""
    try:
        store, _ = open_run(run_dir)
    except StoreError:
        return 0
    with store:
        return store.counts()["complete"]


def test_a_run_database_whose_creation_was_cut_short_is_replaced(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.db").write_bytes(b"")  # killed between creating and filling it
    resume = ["search", "--resume", "--run-dir", str(run_dir)]
    assert f"a new search in {run_dir} replaces it" in refused(capsys, resume)
    assert cli.main([*NB201, "--evaluations", "3", "--run-dir", str(run_dir)]) == 0
    store, _ = open_run(run_dir)
    with store:
        assert store.counts()["complete"] >= 3


# --- 3. setup errors before the run exists -------------------------------------------------


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--dataset", "cifar10:/nonexistent/cifar.tar.gz"], "/nonexistent/cifar.tar.gz"),
        (["--dataset", "nosuchdata"], "nosuchdata"),
        (["--widths", "8,8,8,8,8,8"], "cannot be stacked for 8x8 images"),
        (["--subset", "0"], "--subset: must be a positive integer"),
        (["--image-size", "0"], "--image-size: must be a positive integer"),
        (["--val-fraction", "1.5"], "--val-fraction: must be in [0, 1)"),
        (["--mu", "nan"], "--mu: must be a finite number"),
    ],
)
def test_training_setup_errors_leave_no_run(tmp_path, capsys, options, expected):
    run_dir = tmp_path / "sub" / "run"
    assert expected in refused(capsys, [*DIGITS, *options, "--run-dir", str(run_dir)])
    assert not (tmp_path / "sub").exists()


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--rungs", "nan,2"], "invalid rungs[0]: nan is not a finite number"),
        (["--reward-term", "latency_ms=nan"], "reward_terms.latency_ms.weight: nan is not"),
        (["--reward-term", "latency_ms=inf"], "reward_terms.latency_ms.weight: inf is not"),
        (["--option", "q_init=Infinity"], "strategy_options.q_init: inf is not a finite"),
        (["--objectives", "accuracy,bogus"], "invalid objectives: unknown metric 'bogus'"),
        (["--objectives", "Accuracy,FLOPS"], "unknown metric 'Accuracy'; the train evaluator"),
        (["--reward-term", "bogus=1"], "invalid reward_terms: unknown metric 'bogus'"),
        (["--image-size", "100000"], "image_size=100000 must be a number of pixels from 1"),
        (["--widths", "1000000000"], "width 1000000000 is over the largest, 4096 channels"),
        (["--rungs", "auto"], "--rungs auto with 1 epochs: rungs need at least two budgets"),
        (["--threads", "100000"], "threads=100000: give 1 to 256 threads per worker"),
    ],
)
def test_non_finite_numbers_and_unknown_metrics_are_refused_before_the_run(
    tmp_path, capsys, options, expected
):
    run_dir = tmp_path / "run"
    assert expected in refused(capsys, [*DIGITS, *options, "--run-dir", str(run_dir)])
    assert not run_dir.exists()


def test_a_resume_may_change_the_threads(tmp_path, capsys):
    """A run stored with more threads than torch can start (made before they were bounded)
    continues with --resume --threads 1; without it the resume says what to do."""
    options = {"dataset": "digits", "repeats": 1, "widths": [8, 8, 8], "threads": 100000}
    evaluator = {"kind": "train", "recipe": "proxy", "recipe_overrides": {"epochs": 1}, **options}
    run_dir = tmp_path / "run"
    create_run(run_dir, SearchConfig(evaluations=1, batch=1, evaluator=evaluator)).close()
    resume = ["search", "--resume", "--run-dir", str(run_dir), "--no-progress"]
    assert "threads=100000: give 1 to 256 threads per worker" in refused(capsys, resume)
    assert cli.main([*resume, "--threads", "1"]) == 0
    store, _ = open_run(run_dir)
    with store:
        assert [c.state.value for c in store.candidates()] == ["complete"]


def test_a_tables_metrics_are_its_columns(tmp_path, capsys):
    flops = [*NB201, "--objectives", "accuracy,flops", "--run-dir", str(tmp_path / "r")]
    assert "the tabular evaluator gives accuracy, test_accuracy" in refused(capsys, flops)


def test_an_unusable_dataset_cache_is_a_setup_error(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    cache = tmp_path / "file" / "cache"
    proc = blockqnn(*DIGITS, "--run-dir", str(tmp_path / "r"), BLOCKQNN_CACHE=str(cache))
    assert proc.returncode == 2
    assert str(cache) in one_line_error(proc)
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_refused(tmp_path, capsys):
    message = refused(capsys, [*DIGITS, "--device", "cuda", "--run-dir", str(tmp_path / "r")])
    assert "no CUDA device" in message
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("table", "column", "expected"),
    [(str(TABLE), "no-such-column", "no column 'no-such-column'"),
     ("/nonexistent/table.csv", "valid-accuracy", "/nonexistent/table.csv")],
)  # fmt: skip
def test_table_setup_errors_leave_no_run(tmp_path, capsys, table, column, expected):
    argv = ["search", "--space", "nb201", "--table", table, "--reward-column", column]
    assert expected in refused(capsys, [*argv, "--run-dir", str(tmp_path / "r")])
    assert not (tmp_path / "r").exists()


def test_a_run_whose_every_candidate_fails_exits_non_zero(tmp_path):
    run_dir = tmp_path / "run"
    args = [*DIGITS, "--evaluations", "2", "--param-limit", "1", "--run-dir", str(run_dir)]
    proc = blockqnn(*args, "--workers", "0", timeout=300)
    assert proc.returncode == 1
    assert "every candidate failed" in proc.stderr and "over the parameter limit" in proc.stderr


# --- 4. zero means zero; the default budget ------------------------------------------------


@pytest.mark.parametrize("option", ["--evaluations", "--iterations", "--epochs", "--batch"])
def test_zero_counts_are_refused(tmp_path, capsys, option):
    message = refused(capsys, [*NB201, option, "0", "--run-dir", str(tmp_path / "r")])
    assert f"{option}: must be a positive integer, got 0" in message
    assert not (tmp_path / "r").exists()


def test_train_refuses_zero_epochs(capsys):
    argv = ["train", "--block", "shortcut", "--dataset", "digits", "--epochs", "0", "--out", "x"]
    assert "--epochs: must be a positive integer" in refused(capsys, argv)


def test_default_budget_suits_a_cpu(tmp_path):
    run_dir = tmp_path / "run"
    assert blockqnn(*NB201, "--run-dir", str(run_dir)).returncode == 0
    store, config = open_run(run_dir)
    with store:
        assert config.evaluations == DEFAULT_EVALUATIONS < PAPER_EVALUATIONS
        assert len(store.candidates()) - store.count_reused() == DEFAULT_EVALUATIONS
    assert f"default: {DEFAULT_EVALUATIONS}" in blockqnn("search", "--help").stdout


def test_paper_implies_the_papers_budget(tmp_path):
    args = build_search_args([*NB201, "--paper", "--run-dir", str(tmp_path / "r")])
    assert run_options(args).config().evaluations == PAPER_EVALUATIONS
    args = build_search_args([*NB201, "--paper", "--evaluations", "9", "--run-dir", "r"])
    assert run_options(args).config().evaluations == 9


# --- 5. retries: restarts are not attempts; a stalled worker times out ---------------------


class LosingOnce(InlineExecutor):
    """Loses candidate 1's first evaluation, as a dying worker would."""

    lost = False

    def wait(self, timeout=None):
        outcomes = super().wait(timeout)
        if outcomes and outcomes[0].cid == 1 and not self.lost:
            self.lost = True
            return [Outcome(1, error="worker died", lost=True)]
        return outcomes


def test_master_restarts_do_not_use_up_a_candidates_attempts(tmp_path):
    evaluator = {"kind": "tabular", "table": str(TABLE), "reward_column": "valid-accuracy"}
    config = SearchConfig(space="nb201", evaluations=2, batch=2, evaluator=evaluator)
    space = make_space(config)
    first = space.format(new_strategy(config, space).ask())  # what the run proposes first
    with create_run(tmp_path / "run", config) as store:
        store.add_candidate(first, space.key(space.parse(first)), 0, 1.0, None)
        for _ in range(3):  # three masters started it and were killed
            store.mark_running(1)
            store.requeue_unfinished()
        inner = TabularEvaluator(str(TABLE), "valid-accuracy")
        Search(store, config, LosingOnce(inner)).run()
        done = store.get(1)
    assert (done.state.value, done.attempts) == ("complete", 2)


def test_a_stalled_worker_is_killed_after_the_timeout_and_replaced():
    with ProcessExecutor(ScriptEvaluator(), 1, timeout_s=3.0) as executor:
        executor.submit(1, "sleep 0")
        assert executor.wait(timeout=60)[0].result is not None
        os.kill(executor.pids()[0], signal.SIGSTOP)
        start = time.monotonic()
        executor.submit(2, "sleep 0")
        outcomes = executor.wait(timeout=60)
        assert 2.5 < time.monotonic() - start < 20
        assert outcomes[0].lost and "3 s timeout" in outcomes[0].error
        executor.submit(3, "sleep 0")
        assert executor.wait(timeout=60)[0].result is not None


# --- 6. resume: the stored configuration is the truth -------------------------------------


def test_resume_refuses_options_that_contradict_the_run(tmp_path):
    run_dir = tmp_path / "run"
    args = [*NB201, "--evaluations", "20", "--batch", "10", "--seed", "3", "--run-dir"]
    assert blockqnn(*args, str(run_dir)).returncode == 0
    resume = ["search", "--resume", "--run-dir", str(run_dir), "--no-progress"]
    changed = ["--evaluations", "30", "--strategy", "evolution", "--seed", "4", "--batch", "5",
               "--dataset", "digits"]  # fmt: skip
    proc = blockqnn(*resume, *changed)
    assert proc.returncode == 2
    message = one_line_error(proc)
    expected = [
        "--evaluations 30 (run: 20)",
        "--strategy evolution (run: qlearning)",
        "--seed 4 (run: 3)",
        "--batch 5 (run: 10)",
        "--dataset digits (run: None)",
    ]
    assert all(part in message for part in expected), message
    same = blockqnn(*args, str(run_dir), "--resume")  # the first command again: accepted
    assert same.returncode == 0, same.stderr


# --- 8. user errors: one line, exit 2, nothing left behind; bugs keep their traceback ------


def test_unusable_run_dirs_are_user_errors(tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for run_dir, expected in (
        (a_file, "is a file, not a directory"),
        (a_file / "run", f"{a_file} is not a directory"),
        (tmp_path / ("x" * 300), "File name too long"),
    ):
        assert expected in refused(capsys, [*NB201, "--run-dir", str(run_dir)])
        resume = ["search", "--resume", "--run-dir", str(run_dir)]
        assert "holds no run to resume" in refused(capsys, resume)
    # the run directory is checked first, before the (slow) dataset
    bad_data = [*DIGITS, "--dataset", "nosuchdata", "--run-dir", str(a_file)]
    assert "is a file, not a directory" in refused(capsys, bad_data)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--option", 'q_init={"a":1}'], "q_init: expected a number, true/false or text"),
        (["--option", "alpha=abc"], "alpha"),  # not "'<' not supported between ..."
        (["--executor", "nowhere"], "not a Dask scheduler address"),
        (["--threads", "0"], "--threads: must be a positive integer"),
    ],
)
def test_bad_options_are_named_and_leave_no_run(tmp_path, capsys, options, expected):
    message = refused(capsys, [*NB201, *options, "--run-dir", str(tmp_path / "r")])
    assert expected in message and "not supported between" not in message
    assert not (tmp_path / "r").exists()


def test_a_bug_keeps_its_traceback(tmp_path, monkeypatch):
    def broken(self):
        raise ValueError("a bug")

    monkeypatch.setattr(Search, "run", broken)
    with pytest.raises(ValueError, match="a bug"):
        cli.main([*NB201, "--run-dir", str(tmp_path / "r")])


def test_show_into_a_closed_pipe_ends_quietly(tmp_path):
    run_dir = tmp_path / "run"
    assert blockqnn(*NB201, "--evaluations", "300", "--run-dir", str(run_dir)).returncode == 0
    command = f"{sys.executable} -m blockqnn show {run_dir} --json | head -c 10"
    proc = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60)
    assert proc.stdout and proc.stderr == ""


# --- 10. the closing summary; 12. help text ------------------------------------------------


def test_the_end_of_a_search_prints_a_summary(tmp_path, capsys):
    run_dir = tmp_path / "run"
    argv = [*NB201, "--evaluations", "40", "--batch", "10", "--run-dir", str(run_dir)]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    store, _ = open_run(run_dir)
    with store:
        best = store.top(1)[0]
        reused = sum(c.reused_from is not None for c in store.candidates())
    assert "40 of a budget of 40 evaluations (40 complete, 0 failed)" in out
    assert f"{reused} isomorphic duplicates" in out
    assert f"best: #{best.id} reward {format_metric(best.reward)}" in out
    assert f"test {format_metric(best.test_accuracy)}%" in out and best.arch in out
    assert f"blockqnn show {run_dir}" in out and f"blockqnn report {run_dir}" in out
    assert "{" not in out.replace(best.arch, "")  # no Python dict
    assert cli.main(["show", str(run_dir)]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header == (
        f"run {run_dir}: finished; 40 of a budget of 40 evaluations (40 complete, 0 failed); "
        f"free: {reused} isomorphic duplicates answered from stored results"
    )


def test_the_next_commands_are_the_readmes():
    from blockqnn.summary import next_commands

    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    for command in next_commands("runs/demo", SearchConfig(evaluator={"kind": "train"}), True):
        assert f"`{command}`" in readme


def test_every_search_option_has_help():
    parser = cli.build_parser()
    search = next(a for a in parser._subparsers._group_actions).choices["search"]
    missing = [a.option_strings for a in search._actions if a.option_strings and not a.help]
    assert missing == []


def test_dataset_names_compare_in_any_case_on_resume(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    parse = cli.build_parser().parse_args
    from blockqnn.resume import conflicts

    stored = run_options(parse(["search", "--run-dir", "r", "--dataset", "digits"])).config()
    upper = parse(["search", "--run-dir", "r", "--resume", "--dataset", " DIGITS"])
    assert conflicts(run_options(upper), stored) == []
    folder = run_options(parse(["search", "--run-dir", "r", "--dataset", "ImageFolder:pics"]))
    assert folder.config().evaluator["dataset"] == f"imagefolder:{tmp_path}/pics"
