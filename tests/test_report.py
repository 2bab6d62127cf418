"""Reports: block drawings (both engines), layered layout, curves and the ``draw`` /
``plot`` commands (the HTML report: ``test_report_page.py``)."""

from __future__ import annotations

import io
import random
import re
import shutil
from collections import Counter
from itertools import pairwise
from pathlib import Path

import pytest
from PIL import Image

from blockqnn import blocks, cli, nsc
from blockqnn.config import SearchConfig
from blockqnn.evaluation import Result
from blockqnn.nb201 import NB201Error
from blockqnn.report import draw, plot_runs, render, run_curves
from blockqnn.report.curves import epsilon_bands, iteration_stats
from blockqnn.report.graph import FILLS, block_graph, cell_graph, to_graph
from blockqnn.report.layout import bezier, crossings, layout, order_rows
from blockqnn.search import create_run, open_run
from blockqnn.space import NSCSpace, walk
from blockqnn.strategies.schedule import EpsilonSchedule, iterations_for
from tests.conftest import shared_file

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CELL = "|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2|"
SCRIPT_ERROR = "worker crashed: <script>alert('x')</script> & \"more\""

#: Node labels of the paper's Fig. 2 blocks, counted by hand from the figure (each block
#: has one leaf, which feeds the output directly: no one-input output concat).
FIG2_LABELS = {
    "multi_branch": {
        "Input": 1, "Identity": 1, "Conv,1": 3, "Conv,3": 1, "Conv,5": 1, "MaxP,3": 1,
        "Concat": 2, "Output": 1,
    },
    "shortcut": {"Input": 1, "Identity": 1, "Conv,3": 2, "Add": 1, "Output": 1},
}  # fmt: skip


def need_dot() -> None:
    if shutil.which("dot") is None:
        pytest.fail(
            "Graphviz's dot is missing: the test setup installs it (apt-get install graphviz)"
        )


def svg_texts(svg: bytes) -> Counter:
    """The text elements of an SVG (node and edge labels, title), counted."""
    return Counter(t.strip() for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg.decode()))


# -- runs built for the tests ---------------------------------------------------------


def build_nsc_run(run_dir: Path, evaluations: int = 40, batch: int = 8) -> None:
    """An NSC run filled with random legal blocks (no training): a few fail."""
    config = SearchConfig(
        space="nsc", max_index=10, evaluations=evaluations, batch=batch,
        evaluator={"kind": "tabular", "table": "x", "reward_column": "y"},
    )  # fmt: skip
    schedule = EpsilonSchedule().scaled(iterations_for(evaluations, batch))
    space, rng = NSCSpace(max_index=10), random.Random(0)
    with create_run(run_dir, config) as store:
        for i in range(evaluations):
            block = space.architecture(walk(space, lambda state, legal: rng.choice(legal)))
            iteration = i // batch
            cid = store.add_candidate(
                nsc.format_block(block), space.key(block), iteration,
                schedule.epsilon(iteration), None,
            )  # fmt: skip
            store.mark_running(cid)
            if i % 13 == 5:
                store.fail(cid, SCRIPT_ERROR)
                continue
            metrics = {
                "flops": rng.uniform(0.05, 0.5), "params": rng.randrange(10**5, 10**6),
                "density": nsc.density(block), "latency_ms": rng.uniform(0.5, 3.0),
            }  # fmt: skip
            result = Result(accuracy=rng.uniform(40, 70), metrics=metrics, cost_s=2.0)
            store.complete(cid, result, result.accuracy - 5 * metrics["density"], None)
        store.set_meta("status", "finished")


def search_tabular(run_dir: Path, strategy: str) -> None:
    table = shared_file("nb201", "cifar10_valid.csv")
    status = cli.main([
        "search", "--space", "nb201", "--strategy", strategy, "--table", str(table),
        "--reward-column", "valid-accuracy", "--test-column", "test-accuracy",
        "--evaluations", "300", "--seed", "0", "--run-dir", str(run_dir), "--no-progress",
    ])  # fmt: skip
    assert status == 0


# -- drawings -------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FIG2_LABELS))
@pytest.mark.parametrize("engine", ["graphviz", "python"])
def test_fig2_block_svg_has_every_label(name, engine, tmp_path):
    if engine == "graphviz":
        need_dot()
    path = tmp_path / f"{name}.svg"
    assert draw.draw_block(name, path, engine=engine) == engine
    svg = path.read_bytes()
    assert svg_texts(svg) == Counter(FIG2_LABELS[name])
    assert b"<svg" in svg


@pytest.mark.parametrize("arch", [blocks.KNOWN["multi_branch"], blocks.KNOWN["shortcut"], CELL])
def test_engines_draw_the_same_labels(arch):
    need_dot()
    graphviz = svg_texts(render(arch, "svg", engine="graphviz", title="T"))
    python = svg_texts(render(arch, "svg", engine="python", title="T"))
    assert graphviz == python
    assert graphviz["T"] == 1


@pytest.mark.parametrize("engine", ["graphviz", "python"])
def test_png_drawings_are_real_images(engine, tmp_path):
    if engine == "graphviz":
        need_dot()
    for name in FIG2_LABELS:
        path = tmp_path / f"{name}.png"
        draw.draw_block(name, path, engine=engine, title=name)
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000
        image = Image.open(io.BytesIO(data)).convert("RGB")
        assert image.width > 100 and image.height > 300
        assert len(image.getcolors(maxcolors=1 << 20)) > 20  # text, fills, edges


def test_auto_engine_falls_back_to_python_without_graphviz(monkeypatch, tmp_path):
    monkeypatch.setattr(draw.shutil, "which", lambda program: None)
    assert draw.draw_block("shortcut", tmp_path / "s.svg") == "python"
    assert draw.draw_block("shortcut", tmp_path / "s.png") == "python"
    with pytest.raises(draw.DrawError, match="needs Graphviz's dot"):
        draw.draw_block("shortcut", tmp_path / "s.svg", engine="graphviz")


def test_bad_requests_give_clear_errors(tmp_path):
    with pytest.raises(draw.DrawError, match=r"use a \.svg or \.png"):
        draw.draw_block("shortcut", tmp_path / "s.pdf")
    with pytest.raises(draw.DrawError, match="unknown engine"):
        render("shortcut", engine="tikz")
    with pytest.raises(NB201Error, match="unknown operation 'conv_7x7'"):
        render(CELL.replace("nor_conv_1x1", "conv_7x7"))
    with pytest.raises(nsc.NSCError, match="layer 2"):
        render("(1,4,0,0,0) (2,1,4,1,0) (3,7,0,0,0)")


def test_cell_graph_has_four_nodes_and_six_labelled_edges():
    graph = cell_graph(CELL)
    assert [n.label for n in graph.nodes] == ["Input", "1", "2", "Output"]
    assert [e.label for e in graph.edges] == [
        "nor_conv_3x3", "none", "nor_conv_1x1", "skip_connect", "nor_conv_3x3", "avg_pool_3x3"
    ]  # fmt: skip
    assert to_graph(CELL) == graph


def test_block_graph_colours_nodes_by_kind():
    graph = block_graph(blocks.get("multi_branch"))
    kinds = {n.label: n.kind for n in graph.nodes}
    assert kinds["Conv,5"] == "conv" and kinds["MaxP,3"] == "pool"
    assert kinds["Identity"] == "identity" and kinds["Concat"] == "merge"
    assert set(FILLS) >= {n.kind for n in graph.nodes}
    assert [e.src for e in graph.edges if e.dst == "out"] == ["l9"]  # the only leaf


def test_block_output_concat_only_joins_several_leaves():
    one_leaf = block_graph(blocks.get("shortcut"))
    assert "Concat" not in {n.label for n in one_leaf.nodes}
    assert [(e.src, e.dst) for e in one_leaf.edges if e.dst == "out"] == [("l4", "out")]
    two_leaves = block_graph(nsc.parse("(1,1,3,0,0) (2,2,3,0,0) (3,7,0,0,0)"))
    assert [n.label for n in two_leaves.nodes] == ["Input", "Conv,3", "MaxP,3", "Concat", "Output"]
    assert [e.src for e in two_leaves.edges if e.dst == "concat"] == ["l1", "l2"]


def test_separate_component_codes_are_drawn():
    graph = block_graph(nsc.parse("(1,8,0,0,0) (2,1,3,1,0) (3,9,0,2,0) (4,7,0,0,0)"))
    assert [n.label for n in graph.nodes] == ["Input", "ReLU", "Conv,3", "BN", "Output"]
    assert set(FILLS) >= {n.kind for n in graph.nodes}


# -- layout ---------------------------------------------------------------------------


def random_blocks(count: int, seed: int = 1) -> list[nsc.Block]:
    space, rng = NSCSpace(max_index=12), random.Random(seed)
    return [
        space.architecture(walk(space, lambda state, legal: rng.choice(legal)))
        for _ in range(count)
    ]


@pytest.mark.parametrize(
    "graph",
    [block_graph(blocks.get(n)) for n in sorted(FIG2_LABELS)]
    + [cell_graph(CELL)]
    + [block_graph(b) for b in random_blocks(20)],
)
def test_layout_input_first_output_last_every_edge_down(graph):
    placed = layout(graph)
    first, last = graph.nodes[0].id, graph.nodes[-1].id
    assert placed.ranks[first] == 0
    assert all(placed.ranks[n.id] > 0 for n in graph.nodes[1:])
    assert all(placed.ranks[n.id] < placed.ranks[last] for n in graph.nodes[:-1])
    for edge, route in zip(graph.edges, placed.routes, strict=True):
        assert placed.ranks[edge.dst] > placed.ranks[edge.src]
        ys = [y for _, y in route]
        assert ys == sorted(set(ys)), "a route must go strictly downwards"
        curve = [y for _, y in bezier(route)]
        assert curve == sorted(curve)
    for box in placed.boxes.values():
        assert 0 < box.x - box.w / 2 < box.x + box.w / 2 < placed.width
        assert 0 < box.y - box.h / 2 < box.y + box.h / 2 < placed.height


def test_boxes_of_a_rank_do_not_overlap():
    for block in random_blocks(20, seed=2):
        placed = layout(block_graph(block))
        by_rank: dict[int, list] = {}
        for node_id, box in placed.boxes.items():
            by_rank.setdefault(placed.ranks[node_id], []).append(box)
        for boxes in by_rank.values():
            boxes.sort(key=lambda b: b.x)
            for left, right in pairwise(boxes):
                assert left.x + left.w / 2 < right.x - right.w / 2


def test_ordering_removes_an_avoidable_crossing():
    rows = [["a", "b"], ["c", "d"]]
    segments = [("a", "d"), ("b", "c")]
    assert crossings(rows, segments) == 1
    assert crossings(order_rows(rows, segments), segments) == 0


# -- curves ---------------------------------------------------------------------------

SINGLE_LAYER = ["(1,1,1,0,0)", "(1,1,3,0,0)", "(1,1,5,0,0)", "(1,2,1,0,0)", "(1,2,3,0,0)",
                "(1,3,1,0,0)", "(1,3,3,0,0)", "(1,4,0,0,0)"]  # fmt: skip


@pytest.fixture
def tiny_run(tmp_path) -> Path:
    """Iterations of 2 (batch 2): rewards [10, 20], [5, 30], [25, failed], [12, 8, reuse 30]."""
    plan = [(0, 1.0, 10), (0, 1.0, 20), (1, 1.0, 5), (1, 1.0, 30), (2, 0.5, 25), (2, 0.5, None),
            (3, 0.5, 12), (3, 0.5, 8)]  # fmt: skip
    config = SearchConfig(
        space="nsc",
        evaluations=9,
        batch=2,
        count_duplicates=True,
        evaluator={"kind": "tabular", "table": "x", "reward_column": "y"},
    )
    with create_run(tmp_path / "tiny", config) as store:
        ids = []
        for (iteration, epsilon, reward), code in zip(plan, SINGLE_LAYER, strict=True):
            text = f"{code} (2,7,0,0,0)"
            key = nsc.canonical_key(nsc.parse(text))
            cid = store.add_candidate(text, key, iteration, epsilon, None)
            ids.append(cid)
            if reward is None:
                store.fail(cid, "diverged")
            else:
                store.complete(cid, Result(accuracy=reward + 50.0), reward, None)
        source = store.get(ids[3])
        store.add_reused(source.arch, source.key, 3, 0.5, source.id, 30.0, None)
    return tmp_path / "tiny"


def test_curve_numbers_by_hand(tiny_run):
    stats = run_curves(tiny_run).stats
    table = [(s.iteration, s.count, s.mean, s.top1, s.top5, s.epsilon) for s in stats]
    assert table == [
        (0, 2, 15.0, 20.0, 15.0, 1.0),
        (1, 2, 17.5, 30.0, 16.25, 1.0),
        (2, 1, 25.0, 30.0, 18.0, 0.5),
        # the reused duplicate counts in the mean but its architecture once in the top-5
        (3, 3, pytest.approx(50 / 3), 30.0, pytest.approx(19.4), 0.5),
    ]
    assert epsilon_bands(stats) == [(0, 1, 1.0), (2, 3, 0.5)]
    accuracy = run_curves(tiny_run, metric="accuracy").stats
    assert [s.top1 for s in accuracy] == [70.0, 80.0, 80.0, 80.0]
    store, _ = open_run(tiny_run)
    with store:
        free = iteration_stats(store.candidates(), with_reused=False)
    # a run whose duplicates are free: the iteration's mean is over trained candidates
    assert (free[3].count, free[3].mean, free[3].top5) == (2, 10.0, pytest.approx(19.4))


def test_curve_rejects_unknown_metric():
    with pytest.raises(ValueError, match="unknown metric"):
        iteration_stats([], metric="loss")


def test_tabular_curves_are_monotone_and_match_the_store(tabular_runs):
    for run_dir in tabular_runs:
        stats = run_curves(run_dir).stats
        store, config = open_run(run_dir)
        with store:
            best = store.top(5)
        assert len(stats) == iterations_for(config.evaluations, config.batch)
        assert sum(s.count for s in stats) == config.evaluations
        top1 = [s.top1 for s in stats]
        top5 = [s.top5 for s in stats]
        assert top1 == sorted(top1) and top5 == sorted(top5)
        assert top1[-1] == best[0].reward
        assert top5[-1] == pytest.approx(sum(c.reward for c in best) / 5)
        assert all(s.top5 <= s.top1 for s in stats)


def test_plot_runs_png_and_svg(tabular_runs, tmp_path):
    png = plot_runs(tabular_runs, tmp_path / "curves.png", labels=["Q-learning", "random"])
    assert png.read_bytes().startswith(PNG_MAGIC)
    image = Image.open(png).convert("RGB")
    assert image.width > 800 and len(image.getcolors(maxcolors=1 << 20)) > 50
    svg = plot_runs(tabular_runs, tmp_path / "curves.svg").read_text()
    assert "<svg" in svg
    with pytest.raises(ValueError, match="1 label"):
        plot_runs(tabular_runs, tmp_path / "x.png", labels=["one"])
    with pytest.raises(ValueError, match=r"use a \.png or \.svg"):
        plot_runs(tabular_runs, tmp_path / "x.jpg")


# -- commands -------------------------------------------------------------------------


def test_draw_command(nsc_run, tmp_path, capsys):
    assert cli.main(["draw", "shortcut", "-o", str(tmp_path / "s.svg")]) == 0
    assert svg_texts((tmp_path / "s.svg").read_bytes()) == Counter(FIG2_LABELS["shortcut"])
    top = tmp_path / "top1.png"
    assert cli.main(["draw", f"{nsc_run}:top1", "-o", str(top), "--engine", "python"]) == 0
    assert top.read_bytes().startswith(PNG_MAGIC)
    assert cli.main(["draw", CELL, "-o", str(tmp_path / "c.svg"), "--title", "cell"]) == 0
    assert "skip_connect" in (tmp_path / "c.svg").read_text()
    capsys.readouterr()
    assert cli.main(["draw", "shortcut", "-o", str(tmp_path / "s.gif")]) == 2
    assert "use a .svg or .png file" in capsys.readouterr().err
    assert cli.main(["draw", f"{nsc_run}:top99", "-o", str(tmp_path / "x.svg")]) == 2
    assert "cannot take top99" in capsys.readouterr().err


def test_plot_command(tabular_runs, tmp_path, capsys):
    out = tmp_path / "curves.png"
    runs = [str(run) for run in tabular_runs]
    assert cli.main(["plot", *runs, "-o", str(out), "--labels", "Q-learning,random"]) == 0
    assert out.read_bytes().startswith(PNG_MAGIC)
    assert cli.main(["plot", *runs, "-o", str(out), "--labels", "only-one"]) == 2
    assert "1 label(s) for 2 run(s)" in capsys.readouterr().err
