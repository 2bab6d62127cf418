"""Every view of a run ranks alike (show, show --json, export, DIR:topK); NAS-Bench-201 runs
in draw / train; learning curves of runs with different batch sizes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from matplotlib.colors import to_rgba

from blockqnn import cli, nsc
from blockqnn.cli._blocks import resolve_arch, resolve_block
from blockqnn.config import SearchConfig
from blockqnn.evaluation import Result
from blockqnn.report.curves import IterationStats, RunCurves, curves_figure
from blockqnn.search import create_run

#: Two isomorphic blocks (the concat's inputs swapped) and one other block.
BRANCHES = "(1,1,3,0,0) (2,2,3,0,0) (3,6,0,2,1) (4,7,0,0,0)"
SWAPPED = "(1,2,3,0,0) (2,1,3,0,0) (3,6,0,2,1) (4,7,0,0,0)"
SHORTCUT = "(1,4,0,0,0) (2,1,3,1,0) (3,1,3,2,0) (4,5,0,1,3) (5,7,0,0,0)"
CELL = "|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2|"


def complete(store, arch: str, key: str, reward: float) -> int:
    cid = store.add_candidate(arch, key, 0, 1.0, None)
    store.complete(cid, Result(accuracy=reward), reward, None)
    return cid


@pytest.fixture
def nsc_run(tmp_path: Path) -> Path:
    """A run without dedupe: one architecture evaluated twice (both orders) and reused."""
    run = tmp_path / "nsc"
    config = SearchConfig(dedupe=False, evaluator={"kind": "train"})
    with create_run(run, config) as store:
        key = nsc.canonical_key(nsc.parse(BRANCHES))
        assert nsc.canonical_key(nsc.parse(SWAPPED)) == key
        best = complete(store, BRANCHES, key, 70.0)
        complete(store, SWAPPED, key, 65.0)
        store.add_reused(BRANCHES, key, 0, 1.0, best, 70.0, None)
        complete(store, SHORTCUT, nsc.canonical_key(nsc.parse(SHORTCUT)), 60.0)
    return run


@pytest.fixture
def nb201_run(tmp_path: Path) -> Path:
    run = tmp_path / "nb201"
    config = SearchConfig(space="nb201", evaluator={"kind": "tabular", "table": "t.csv"})
    with create_run(run, config) as store:
        complete(store, CELL, CELL, 91.0)
    return run


def test_show_export_and_topk_rank_alike(nsc_run: Path, tmp_path: Path, capsys) -> None:
    assert cli.main(["show", str(nsc_run)]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[2:]]
    assert [(r[0], r[2]) for r in rows] == [("1", "70"), ("2", "60")]
    assert cli.main(["show", str(nsc_run), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["candidates"]
    assert [(c["rank"], c["arch"]) for c in shown[:3]] == [
        (1, BRANCHES),
        (2, SHORTCUT),
        (None, SWAPPED),
    ]
    out = tmp_path / "best.json"
    assert cli.main(["export", str(nsc_run), "--top", "5", "-o", str(out)]) == 0
    exported = json.loads(out.read_text())["blocks"]
    assert [(b["rank"], b["arch"]) for b in exported] == [(1, BRANCHES), (2, SHORTCUT)]
    assert nsc.format_block(resolve_block(f"{nsc_run}:top2")) == SHORTCUT
    with pytest.raises(ValueError, match="has 2 ranked candidate"):
        resolve_block(f"{nsc_run}:top3")


def test_nb201_run_draws_its_cell_but_does_not_train(nb201_run: Path, tmp_path: Path, capsys):
    assert resolve_arch(f"{nb201_run}:top1") == CELL
    svg = tmp_path / "cell.svg"
    assert cli.main(["draw", f"{nb201_run}:top1", "-o", str(svg), "--engine", "python"]) == 0
    assert "nor_conv_3x3" in svg.read_text()
    best = tmp_path / "best.json"
    assert cli.main(["export", str(nb201_run), "-o", str(best)]) == 0
    exported = json.loads(best.read_text())
    assert exported["space"] == "nb201"
    assert [(b["rank"], b["arch"], b["reward"]) for b in exported["blocks"]] == [(1, CELL, 91.0)]
    argv = ["train", "--block", f"{nb201_run}:top1", "--dataset", "digits", "--epochs", "1"]
    assert cli.main([*argv, "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "NAS-Bench-201 cell" in err and "builds and trains NSC blocks only" in err
    assert not (tmp_path / "out").exists()


def curves(name: str, batch: int, epsilons: list[float]) -> RunCurves:
    stats = [
        IterationStats(i, batch, 50.0 + i, 50.0 + i, 50.0 + i, eps)
        for i, eps in enumerate(epsilons)
    ]
    return RunCurves(Path(name), SearchConfig(batch=batch, evaluator={"kind": "train"}), stats)


def span_colours(ax) -> list[tuple]:
    return [tuple(round(v, 3) for v in p.get_facecolor()[:3]) for p in ax.patches]


def rgb(colour: str) -> tuple:
    return tuple(round(v, 3) for v in to_rgba(colour)[:3])


def test_curves_of_runs_with_different_batches_count_candidates() -> None:
    q, random = curves("q", 8, [1.0, 1.0, 0.5, 0.1]), curves("r", 2, [1.0] * 10)
    ax = curves_figure([q, random]).axes[0]
    assert ax.get_xlabel() == "Candidates proposed"
    top1 = [line for line in ax.lines if line.get_label().endswith("top-1")]
    assert [list(line.get_xdata()) for line in top1] == [[8, 16, 24, 32], list(range(2, 22, 2))]
    # each run's own stages, in its own colour: q has 3 stages, random search 1
    assert span_colours(ax) == [rgb("C0")] * 3 + [rgb("C1")]


def test_curves_with_one_schedule_shade_it_once() -> None:
    ax = curves_figure([curves("a", 4, [1.0, 0.1]), curves("b", 4, [1.0, 0.1])]).axes[0]
    assert ax.get_xlabel() == "Iteration (batch of 4)"
    assert span_colours(ax) == [rgb("0.5")] * 2


def test_one_partial_iteration_draws_its_point_within_its_strip() -> None:
    # --paper --evaluations 16: 16 candidates of an iteration of 64
    partial = RunCurves(
        Path("p"),
        SearchConfig(batch=64, evaluator={"kind": "train"}),
        [IterationStats(0, 16, 70.0, 80.0, 75.0, 1.0)],
    )
    ax = curves_figure([partial, curves("b", 8, [1.0, 0.5])]).axes[0]
    lines = [line for line in ax.lines if line.get_label().startswith("p ")]
    assert all(line.get_marker() == "o" for line in lines)  # a lone point is drawn
    assert {tuple(line.get_xdata()) for line in lines} == {(16.0,)}  # its 16 candidates
    strip = ax.patches[0].get_path().get_extents(ax.patches[0].get_patch_transform())
    assert (strip.x0, strip.x1) == (0.0, 16.0)  # not past its candidates


def test_only_user_errors_become_one_line_errors(monkeypatch, capsys, tmp_path):
    """Every command reports the library's user errors in one line (exit 2); any other
    exception, such as a plain ValueError from a bug, keeps its traceback."""
    import blockqnn.cli.show as show_module
    from blockqnn.cli import main
    from blockqnn.config import ConfigError

    def fails_with(exc):
        def command(args):
            raise exc

        return command

    monkeypatch.setattr(show_module, "show", fails_with(ConfigError("invalid batch: 0")))
    assert main(["show", str(tmp_path)]) == 2
    assert "blockqnn show: error: invalid batch: 0" in capsys.readouterr().err
    monkeypatch.setattr(show_module, "show", fails_with(ValueError("a bug")))
    with pytest.raises(ValueError, match="a bug"):
        main(["show", str(tmp_path)])


#: (codes, accuracy, latency_ms, steered reward): the steered reward (a random weight per
#: iteration) ranks #2 above #1 and sinks #3 (on the front: the fastest); #4 is dominated.
STEERED = [
    ("(1,1,3,0,0) (2,7,0,0,0)", 95.4, 1.44, 94.0),
    ("(1,1,1,0,0) (2,7,0,0,0)", 92.6, 0.43, 96.0),
    ("(1,2,3,0,0) (2,7,0,0,0)", 81.0, 0.20, 40.0),
    ("(1,3,3,0,0) (2,7,0,0,0)", 80.0, 2.00, 85.0),
]


@pytest.fixture
def steered_run(tmp_path: Path) -> Path:
    run = tmp_path / "steered"
    config = SearchConfig(
        objectives=["accuracy", "latency"], evaluations=4, batch=2, evaluator={"kind": "train"}
    )
    with create_run(run, config) as store:
        for codes, accuracy, latency, reward in STEERED:
            cid = store.add_candidate(codes, nsc.canonical_key(nsc.parse(codes)), 0, 1.0, None)
            result = Result(accuracy=accuracy, metrics={"latency_ms": latency})
            store.complete(cid, result, reward, None)
    return run


def test_a_multi_objective_run_ranks_by_its_front_in_every_view(steered_run, tmp_path, capsys):
    from blockqnn.report.data import run_data

    front_first = [STEERED[i][0] for i in (0, 1, 2, 3)]  # front by accuracy, then the rest
    assert cli.main(["show", str(steered_run)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("reward: steered: accuracy − w·ln(latency_ms)")
    assert "ranks by the Pareto front of accuracy, latency_ms" in out[1]
    assert [line.split()[1] for line in out[3:]] == ["1", "2", "3", "4"]
    assert cli.main(["show", str(steered_run), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["candidates"]
    assert [c["arch"] for c in shown] == front_first
    assert nsc.format_block(resolve_block(f"{steered_run}:top1")) == STEERED[0][0]
    out_file = tmp_path / "best.json"
    assert cli.main(["export", str(steered_run), "--top", "4", "-o", str(out_file)]) == 0
    assert [b["arch"] for b in json.loads(out_file.read_text())["blocks"]] == front_first
    data = run_data(steered_run)
    assert data["top"] == [1, 2, 3, 4]
    assert dict(data["settings"])["reward"].startswith("steered: accuracy − w·ln(latency_ms)")


def test_export_refuses_a_negative_top(nsc_run: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["export", str(nsc_run), "--top", "-1"])
    assert exited.value.code == 2
    assert "--top: must be a positive integer" in capsys.readouterr().err
