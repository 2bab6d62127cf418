"""blockqnn from Python (``blockqnn.create_run`` / ``open_run`` / ``Run``): the command
line's defaults and errors, your own data and training, callbacks, and runs shared with
the command line both ways."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import blockqnn
from blockqnn import cli
from blockqnn.cli._search_args import run_options
from blockqnn.data import DatasetError
from blockqnn.importpath import ImportPathError, import_path
from blockqnn.options import OptionError
from blockqnn.rundir import RunDirError
from blockqnn.search import Search
from blockqnn.store import CandidateState

from .conftest import shared_file

TABLE = shared_file("nb201", "cifar10_valid.csv")
TABULAR = {"space": "nb201", "table": str(TABLE), "reward_column": "valid-accuracy"}
#: A digits block search as small as it gets (about a second per candidate).
TINY = {"epochs": 1, "repeats": 1, "widths": (8, 8, 8), "val_fraction": 0.3}


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return (digits.images / 16).astype(np.float32), digits.target


# --- the command line's defaults, checks and errors ----------------------------------------


def test_create_run_has_the_command_lines_defaults(tmp_path):
    run = blockqnn.create_run(tmp_path / "py")
    parsed = cli.build_parser().parse_args(["search", "--run-dir", str(tmp_path / "cli")])
    assert run.config == run_options(parsed).config()
    assert run.config.evaluations == 256 and run.status == "created"
    with pytest.raises(RunDirError, match="already holds a run"):
        blockqnn.create_run(tmp_path / "py")


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"evaluations": 0}, OptionError, "--evaluations: must be a positive integer, got 0"),
        ({"val_fraction": 1.5}, OptionError, r"--val-fraction: must be in \[0, 1\)"),
        ({"epochs": 2.5}, OptionError, "--epochs: must be a positive integer"),
        ({"evaluation": 5}, OptionError, "unknown search option"),
        ({"strategy": "nope"}, OptionError, "invalid strategy|strategy"),
        ({"dataset": (np.zeros((4, 8, 6)), np.zeros(4, int))}, DatasetError, "square"),
        ({"dataset": (np.full((4, 8, 8), 2.0), np.zeros(4, int))}, DatasetError, r"\[0, 1\]"),
        ({"trainer": "no_such_module:train"}, OptionError, "no_such_module"),
        ({"trainer": lambda net, budget: 1.0}, ImportPathError, "top level"),
    ],
)
def test_bad_options_are_user_errors_and_leave_nothing(tmp_path, options, error, message):
    with pytest.raises(error, match=message):
        blockqnn.create_run(tmp_path / "run", **options)
    assert not (tmp_path / "run").exists()


def test_open_run_needs_a_run(tmp_path):
    with pytest.raises(RunDirError, match="holds no run"):
        blockqnn.open_run(tmp_path)


def test_import_paths_of_functions_and_classes():
    from tests import helpers_trainer

    assert import_path(helpers_trainer.train) == "tests.helpers_trainer:train"
    assert import_path(helpers_trainer.Constant) == "tests.helpers_trainer:Constant"


# --- callbacks ---------------------------------------------------------------------------


def test_a_callback_stops_the_search_cleanly_and_search_continues(tmp_path):
    run = blockqnn.create_run(tmp_path / "run", evaluations=20, **TABULAR)
    seen = []

    def stop_at_five(r: blockqnn.Run, candidate) -> None:
        seen.append(candidate)
        if len(seen) == 5:
            r.stop()

    run.search(callbacks=[stop_at_five])
    assert run.status == "stopped" and len(seen) == 5
    assert all(c.state is CandidateState.COMPLETE for c in seen)
    assert [c.id for c in run.candidates() if c.reused_from is None] == [c.id for c in seen]
    run.search()  # continues to the budget, nothing evaluated twice
    evaluated = [c for c in run.candidates() if c.reused_from is None]
    assert run.status == "finished" and len(evaluated) == 20
    assert [c.id for c in evaluated[:5]] == [c.id for c in seen]
    frame = run.to_dataframe()
    assert len(frame) == len(run.candidates()) and {"accuracy", "reward"} <= set(frame.columns)


# --- your own data -----------------------------------------------------------------------


class DigitsDataset(torch.utils.data.Dataset):
    """Map-style: (float image tensor [1, 8, 8] in [0, 1], label)."""

    def __init__(self) -> None:
        x, y = digits_arrays()
        self.x, self.y = torch.from_numpy(x).unsqueeze(1), y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


@pytest.mark.parametrize("kind", ["arrays", "torch"])
def test_own_data_is_searched_and_the_command_line_reads_the_run(tmp_path, capsys, kind):
    x, y = digits_arrays()
    dataset = (np.rint(x * 255).astype(np.uint8), y) if kind == "arrays" else DigitsDataset()
    run_dir = tmp_path / "run"
    run = blockqnn.create_run(run_dir, dataset=dataset, evaluations=2, **TINY)
    assert run.config.evaluator["dataset"] == f"npz:{run_dir.resolve()}/data.npz"
    run.search(workers=1)
    best = run.best(2)
    assert run.status == "finished" and best and best[0].accuracy > 0
    capsys.readouterr()
    assert cli.main(["show", str(run_dir), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    ranked = [row["id"] for row in shown["candidates"] if row["rank"] is not None]
    assert ranked[:2] == [c.id for c in best]
    network = run.model("top1")
    assert network.codes == blockqnn.open_run(run_dir).model(best[0].id).codes
    out = str(tmp_path / "net.py")
    assert cli.main(["export", f"{run_dir}:top1", "--format", "py", "-o", out]) == 0
    assert cli.main(["report", str(run_dir)]) == 0 and (run_dir / "report.html").exists()


# --- your own training -------------------------------------------------------------------


def test_own_training_runs_in_workers_and_resumes_from_the_command_line(tmp_path, capsys):
    run_dir = tmp_path / "run"
    from tests.helpers_trainer import train

    run = blockqnn.create_run(run_dir, trainer=train, evaluations=3, **TINY)
    assert run.config.evaluator["trainer"] == "tests.helpers_trainer:train"
    run.search(workers=1, callbacks=[lambda r, c: r.stop()])
    assert run.status == "stopped"
    assert cli.main(["search", "--run-dir", str(run_dir), "--resume", "--no-progress"]) == 0
    evaluated = [c for c in run.candidates() if c.reused_from is None]
    assert len(evaluated) == 3 and all(c.state is CandidateState.COMPLETE for c in evaluated)
    assert all(c.metrics["start_epoch"] == 0 and "flops" in c.metrics for c in evaluated)
    capsys.readouterr()
    argv = ["search", "--run-dir", str(run_dir), "--resume", "--trainer", "tests.x:y"]
    assert cli.main(argv) == 2
    assert "--trainer tests.x:y (run: tests.helpers_trainer:train)" in capsys.readouterr().err


def test_own_training_with_rungs_and_a_class(tmp_path):
    run = blockqnn.create_run(
        tmp_path / "run", trainer="tests.helpers_trainer:train", evaluations=4, rungs="1,2",
        eta=2, **{**TINY, "epochs": 2},
    )  # fmt: skip
    run.search(workers=1)
    top = [c for c in run.candidates() if c.reward is not None]
    assert top and all(c.metrics["start_epoch"] == 1 and c.metrics["has_state"] for c in top)
    constant = blockqnn.create_run(
        tmp_path / "class", trainer="tests.helpers_trainer:Constant", evaluations=2, **TINY
    )
    constant.search(workers=0)
    assert sorted(c.accuracy for c in constant.candidates() if c.reused_from is None) == [41, 42]


def test_own_training_errors_and_stalls_fail_the_candidate(tmp_path):
    run = blockqnn.create_run(
        tmp_path / "fails", trainer="tests.helpers_trainer:fails", evaluations=2, **TINY
    )
    run.search(workers=1)
    assert all("my own training broke" in c.error for c in run.candidates())
    stalls = blockqnn.create_run(
        tmp_path / "stalls", trainer="tests.helpers_trainer:stalls", evaluations=1, **TINY
    )
    stalls.search(workers=1, eval_timeout=8)  # worker start-up counts too
    (candidate,) = stalls.candidates()
    assert candidate.state is CandidateState.FAILED and candidate.attempts == 3


# --- a run made by the command line, continued from Python ---------------------------------


def test_a_command_line_run_is_opened_and_continued_from_python(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    real_report = Search._report

    def interrupt_after_three(self):
        real_report(self)
        if self._done() >= 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(Search, "_report", interrupt_after_three)
    argv = ["search", "--run-dir", str(run_dir), "--space", "nb201", "--table", str(TABLE)]
    argv += ["--reward-column", "valid-accuracy", "--evaluations", "12", "--no-progress"]
    assert cli.main(argv) == 130
    monkeypatch.undo()
    run = blockqnn.open_run(run_dir)
    assert run.status == "interrupted"
    run.search()
    assert run.status == "finished"
    assert len([c for c in run.candidates() if c.reused_from is None]) == 12
    assert run.best(1)[0].reward == max(c.reward for c in run.candidates() if c.reward)
    with pytest.raises(OptionError, match="no network"):
        run.model("top1")


def test_an_evaluator_kind_may_be_an_import_path(tmp_path, capsys):
    from blockqnn.config import SearchConfig
    from blockqnn.search import create_run

    kind = "tests.helpers_trainer:table_evaluator"
    evaluator = {"kind": kind, "table": str(TABLE), "reward_column": "valid-accuracy"}
    config = SearchConfig(space="nb201", evaluations=6, batch=2, evaluator=evaluator)
    create_run(tmp_path / "run", config).close()
    argv = ["search", "--run-dir", str(tmp_path / "run"), "--resume", "--no-progress"]
    assert cli.main(argv) == 0
    assert "6 of a budget of 6 evaluations (6 complete" in capsys.readouterr().out


def test_own_data_and_training_on_a_dask_cluster(tmp_path):
    from .helpers_dask import local_cluster

    x, y = digits_arrays()
    run = blockqnn.create_run(
        tmp_path / "run", dataset=(x, y), trainer="tests.helpers_trainer:train",
        evaluations=2, **TINY,
    )  # fmt: skip
    with local_cluster(n_workers=1) as cluster:
        run.search(executor=cluster.scheduler_address)
    evaluated = [c for c in run.candidates() if c.reused_from is None]
    assert run.status == "finished" and len(evaluated) == 2
    assert all(c.state is CandidateState.COMPLETE for c in evaluated), [c.error for c in evaluated]
    assert all(c.worker.startswith("tcp://127.0.0.1") for c in evaluated)
