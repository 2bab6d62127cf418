"""The HTML report: its data by hand, and the page in a real headless Chromium (all
candidates sorted and filtered, detail views, comparison, a 10,000-candidate run, the live
page following a run, no console errors, no network requests) and ``blockqnn report``."""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import logging
import re
import shlex
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from blockqnn import cli, nsc
from blockqnn.cli._blocks import resolve_block, run_network
from blockqnn.config import SearchConfig
from blockqnn.evaluation import Result, format_metric
from blockqnn.report import serve, write_report
from blockqnn.report.data import (
    cost_scatters,
    is_cost,
    reward_curve,
    run_data,
    settings_rows,
    train_command,
)
from blockqnn.report.graph import FILLS, block_graph
from blockqnn.search import create_run, open_run
from blockqnn.store import StoreError
from tests.conftest import shared_file
from tests.helpers_browser import CHROMIUM, Browser
from tests.test_report import SCRIPT_ERROR, build_nsc_run

TABULAR = {"kind": "tabular", "table": "x", "reward_column": "y"}
WORKER = "<i>node-1</i>"
ROWS = "document.querySelectorAll('#candidates tbody tr')"
ROW_IDS = f"[...{ROWS}].map((r) => Number(r.dataset.id))"


def single_layer(code: str) -> tuple[str, str]:
    text = f"{code} (2,7,0,0,0)"
    return text, nsc.canonical_key(nsc.parse(text))


@pytest.fixture
def hand_run(tmp_path) -> Path:
    """Five candidates: 1 Conv,3 (acc 60, 0.2 GFLOPs, reward 10); 2 MaxP,3 failed;
    3 Conv,1 (70, 0.1, 20); 4 reuses 1 (reward 10); 5 Conv,5 (75, 0.3, 15)."""
    config = SearchConfig(space="nsc", evaluations=6, batch=2, mu=1, rho=8, evaluator=TABULAR)
    plan = [(0, 1.0, "(1,1,3,0,0)", 60, 0.2, 10), (0, 1.0, "(1,2,3,0,0)", None, None, None),
            (1, 0.5, "(1,1,1,0,0)", 70, 0.1, 20), (2, 0.5, "(1,1,5,0,0)", 75, 0.3, 15)]  # fmt: skip
    with create_run(tmp_path / "hand", config) as store:
        for iteration, epsilon, code, accuracy, flops, reward in plan:
            if code == "(1,1,5,0,0)":
                store.add_reused(*single_layer("(1,1,3,0,0)"), 1, 0.5, 1, 10.0, None)
            cid = store.add_candidate(*single_layer(code), iteration, epsilon, None)
            store.mark_running(cid, WORKER)
            if accuracy is None:
                store.fail(cid, SCRIPT_ERROR)
            else:
                curve = [{"epoch": e, "val_accuracy": accuracy - 10 / e, "val_loss": 1 / e}
                         for e in (1, 2, 3)]  # fmt: skip
                metrics = {"flops": flops, "density": 1.0}
                result = Result(accuracy=accuracy, metrics=metrics, cost_s=1.0, curve=curve)
                store.complete(cid, result, reward, None)
    return tmp_path / "hand"


# -- data by hand -----------------------------------------------------------------------


def test_reward_curve_choices_and_pareto_by_hand(hand_run):
    data = run_data(hand_run)
    # the reused duplicate (4) was a free re-proposal: the curves leave it out
    assert data["curves"]["index"] == {
        "points": [[1, 10, 10, 1.0], [3, 20, 20, 0.5], [4, 15, 20, 0.5]],
        "means": [[1, 10.0], [3, 20.0], [4, 15.0]],
        "bands": [[1, 3, 1.0], [3, 4, 0.5]],
    }
    store, _ = open_run(hand_run)
    with store:
        candidates = store.candidates()
    assert reward_curve(candidates, "index") == {  # as a run that counts duplicates has it
        "points": [[1, 10, 10, 1.0], [3, 20, 20, 0.5], [4, 10, 20, 0.5], [5, 15, 20, 0.5]],
        "means": [[1, 10.0], [4, 15.0], [5, 15.0]],
        "bands": [[1, 3, 1.0], [3, 5, 0.5]],
    }
    by_time = reward_curve(candidates)["points"]
    assert sorted(p[1] for p in by_time) == [10, 10, 15, 20]
    assert [p[0] for p in by_time] == sorted(p[0] for p in by_time)
    assert [p[2] for p in by_time] == [max(p[1] for p in by_time[: i + 1]) for i in range(4)]
    choices = [(c["choice"], c["count"], c["mean"], c["others"]) for c in data["choices"]]
    assert choices == [("Conv,1", 1, 20, 12.5), ("Conv,5", 1, 15, 15), ("Conv,3", 1, 10, 17.5)]
    (scatter,) = data["scatters"]
    assert scatter["cost"] == "flops"
    assert scatter["points"] == [[0.2, 60, 1], [0.1, 70, 3], [0.3, 75, 5]]
    assert [scatter["points"][i][2] for i in scatter["front"]] == [3, 5]
    assert data["details"][1]["duplicates"] == [4] and data["details"][4]["duplicates"] == [1]
    assert data["details"][2]["error"] == SCRIPT_ERROR
    stored = data["details"][4]["curve"]  # the reused duplicate shows its source's curve
    assert [(p["epoch"], p["val_accuracy"]) for p in stored] == [(1, 50), (2, 55), (3, 60 - 10 / 3)]
    assert data["details"][2]["curve"] == []
    progress = dict(data["progress"])
    assert progress["budget"] == "4 of 6 finished"  # the reused duplicate is free
    assert progress["candidates complete"] == 4 and progress["reused duplicates"] == 1


def test_pareto_front_of_a_scatter_is_ordered_by_cost(hand_run):
    store, _ = open_run(hand_run)
    with store:
        candidates = store.candidates()
    (scatter,) = cost_scatters(candidates, ["accuracy", "flops"])
    # (cost, accuracy): 1 (0.2, 60), 3 (0.1, 70), 5 (0.3, 75); 1 is beaten by 3
    assert [scatter["points"][i][2] for i in scatter["front"]] == [3, 5]
    assert cost_scatters(candidates, ["accuracy"]) == []  # no cost measured, no chart
    assert [is_cost(m) for m in ("flops", "latency_ms", "latency_batch", "params")] == [
        True, True, False, False,
    ]  # fmt: skip


def test_every_stored_metric_is_a_column(hand_run, tabular_runs):
    data = run_data(hand_run)
    assert data["metrics"] == ["accuracy", "flops", "density"]
    row = dict(zip(data["columns"], data["rows"][0], strict=True))
    assert row["flops"] == 0.2 and row["layers"] == 1 and row["state"] == "complete"
    nb201 = run_data(tabular_runs[0])
    assert nb201["metrics"] == ["accuracy", "test_accuracy"]


def test_settings_are_readable_rows_for_the_runs_space(tabular_runs, hand_run):
    nb201 = run_data(tabular_runs[0])
    names = [name for name, _ in nb201["settings"]]
    assert "max index" not in names and "components" not in names
    assert dict(nb201["evaluator"])["reward column"] == "valid-accuracy"
    assert nb201["notes"] == []  # it has a test column
    values = [value for _, value in nb201["settings"] + nb201["evaluator"]]
    assert not any("{" in value for value in values)
    nsc_data = run_data(hand_run)
    assert {"max index", "components"} <= {name for name, _ in nsc_data["settings"]}
    assert "--test-column" in nsc_data["notes"][0]
    reward = dict(nsc_data["settings"])["reward"]
    assert reward == "accuracy − 1·ln(GFLOPs) − 8·ln(density)"
    store, _ = open_run(tabular_runs[0])
    with store:
        cells = store.candidates()
    weighted = SearchConfig(space="nb201", mu=1, rho=8, evaluator=TABULAR)
    assert dict(settings_rows(weighted, cells))["reward"] == (
        "accuracy (GFLOPs and density not measured)"
    )
    unweighted = dataclasses.replace(weighted, mu=0, rho=0)
    rows = dict(settings_rows(unweighted, cells))
    assert rows["reward"] == "accuracy (no penalty terms: μ = ρ = 0)" and "objectives" not in rows
    steered = dataclasses.replace(
        unweighted,
        objectives=["accuracy", "latency"],
        constraints={"latency_ms": 5},
        evaluator={**TABULAR, "metric_columns": {"latency_ms": "eval-time"}},
    )
    rows = dict(settings_rows(steered, cells))
    assert rows["objectives"].startswith("accuracy, latency (reward steered")
    assert rows["constraints"] == "latency_ms ≤ 5"


def test_train_command_and_note_of_a_trained_run(tmp_path):
    evaluator = {"kind": "train", "dataset": "digits", "widths": [16, 32, 64], "repeats": 2}
    config = SearchConfig(space="nsc", evaluations=4, batch=2, evaluator=evaluator)
    with create_run(tmp_path / "trained", config) as store:
        cid = store.add_candidate(*single_layer("(1,1,5,0,0)"), 0, 1.0, None)
        store.complete(cid, Result(accuracy=90.0, extra={"repeats": 1}), 90.0, None)
    data = run_data(tmp_path / "trained")
    assert "validation accuracy only" in data["notes"][0]
    command = data["train_command"].format(id=cid)
    args = cli.build_parser().parse_args(shlex.split(command)[1:])
    assert resolve_block(args.block) == nsc.parse("(1,1,5,0,0) (2,7,0,0,0)")
    network = run_network(args.block)  # what train takes from the run
    assert (network.dataset, network.widths, network.repeats) == ("digits", (16, 32, 64), 1)
    assert args.out == tmp_path / "trained" / f"final-{cid}"
    assert train_command(tmp_path, SearchConfig(space="nb201", evaluator=TABULAR)) is None


def test_run_colon_id_names_any_candidate(hand_run, tabular_runs):
    assert resolve_block(f"{hand_run}:5") == nsc.parse("(1,1,5,0,0) (2,7,0,0,0)")
    assert resolve_block(f"{hand_run}:top1") == nsc.parse("(1,1,1,0,0) (2,7,0,0,0)")
    with pytest.raises(StoreError, match="no candidate 99"):
        resolve_block(f"{hand_run}:99")
    with pytest.raises(ValueError, match="is a NAS-Bench-201 cell"):
        resolve_block(f"{tabular_runs[0]}:3")


# -- the page in Chromium ---------------------------------------------------------------


def assert_no_network(browser: Browser, allowed: str) -> None:
    """Only ``allowed`` (the page, or the live server) and inline ``data:`` URIs loaded."""
    fetched = [url for url in browser.requests if not url.startswith("data:")]
    assert fetched and all(url.startswith(allowed) for url in fetched), fetched


def opened(tmp_path: Path, page: Path, query: str = "") -> Browser:
    """A browser showing ``page`` (with a ``?query`` or ``#route``) once it has rendered."""
    browser = Browser(tmp_path / "profile")
    try:
        browser.open(page.resolve().as_uri() + query)
        browser.wait_for(f"{ROWS}.length > 0 || !!document.getElementById('leaderboard')")
    except BaseException:
        browser.close()
        raise
    return browser


def test_all_candidates_sort_filter_and_detail_views(nsc_run, tmp_path):
    page = write_report(nsc_run, tmp_path / "report.html")
    store, _ = open_run(nsc_run)
    with store:
        candidates, best = store.candidates(), store.top(1)[0]
    failed = [c.id for c in candidates if c.state.value == "failed"]
    with opened(tmp_path, page) as browser:
        assert browser.evaluate(ROW_IDS) == [c.id for c in candidates]
        browser.evaluate("document.querySelector('#candidates th[data-column=reward]').click()")
        rewards = {c.id: c.reward for c in candidates}
        shown = browser.evaluate(ROW_IDS)
        assert shown[0] == best.id and len(shown) == len(candidates)
        ranked = [rewards[i] for i in shown if rewards[i] is not None]
        assert ranked == sorted(ranked, reverse=True) and shown[-len(failed) :] == failed
        browser.evaluate("document.querySelector('#candidates th[data-column=reward]').click()")
        assert browser.evaluate(ROW_IDS)[0] != best.id  # ascending now
        browser.evaluate("""(() => { const s = document.getElementById('state-filter');
            s.value = 'failed'; s.dispatchEvent(new Event('change')); })()""")
        browser.wait_for(f"{ROWS}.length === {len(failed)}")
        assert sorted(browser.evaluate(ROW_IDS)) == failed
        text = "(2,1,3"
        browser.evaluate(f"""(() => {{ document.getElementById('state-filter').value = '';
            const t = document.getElementById('text-filter'); t.value = '{text}';
            t.dispatchEvent(new Event('input')); }})()""")
        matching = [c.id for c in candidates if text in c.arch]
        assert 0 < len(matching) < len(candidates)
        browser.wait_for(f"{ROWS}.length === {len(matching)}")
        browser.evaluate("""(() => { const t = document.getElementById('text-filter');
            t.value = ''; t.dispatchEvent(new Event('input')); })()""")
        browser.wait_for(f"{ROWS}.length === {len(candidates)}")
        check_failure_detail(browser, failed[0])
        check_drawn_detail(browser, candidates)
        assert not browser.errors, browser.errors
        assert_no_network(browser, page.resolve().as_uri())


def check_failure_detail(browser: Browser, cid: int) -> None:
    browser.evaluate(f"document.querySelector('#candidates tbody tr[data-id=\"{cid}\"]').click()")
    text = browser.wait_for("!document.getElementById('detail').hidden && detail.innerText")
    assert f"Candidate #{cid}" in text and SCRIPT_ERROR in text
    assert browser.evaluate("document.querySelectorAll('#detail script').length") == 0
    assert "looked its blocks up in a table" in text and "Isomorphic duplicates" in text
    browser.evaluate("window.scrollTo(0, 900)")
    browser.evaluate("document.querySelector('#detail .close').click()")
    browser.wait_for("document.getElementById('detail').hidden")
    assert browser.evaluate("window.scrollY") == 900 and browser.evaluate("location.hash") == ""


def check_drawn_detail(browser: Browser, candidates) -> None:
    """A candidate outside the top ones is drawn by the page's script: the same boxes."""
    top = set(browser.evaluate("[...document.querySelectorAll('#leaderboard a')].map(a => a.hash)"))
    other = next(c for c in candidates if f"#c{c.id}" not in top and c.state.value == "complete")
    browser.evaluate(f"location.hash = '#c{other.id}'")
    labels = browser.wait_for(
        "[...document.querySelectorAll('#detail svg.dag rect + text')].map(t => t.textContent)"
    )
    expected = [n.label for n in block_graph(nsc.parse(other.arch, 10)).nodes]
    assert Counter(labels) == Counter(expected)
    assert browser.evaluate("document.getElementById('detail').innerText").count(other.arch)


def test_detail_view_curve_duplicates_and_reuse(hand_run, tmp_path):
    page = write_report(hand_run, tmp_path / "hand.html")
    with opened(tmp_path, page, "#c4") as browser:
        text = browser.wait_for("!detail.hidden && detail.innerText")
        assert "reused result of\t#1" in text
        duplicates = "[...document.querySelectorAll('#duplicates a')].map(a => a.hash)"
        assert browser.evaluate(duplicates) == ["#c1"]
        paths = "document.querySelectorAll('#detail svg.chart path').length"
        assert browser.evaluate(paths) == 2  # val_accuracy and val_loss
        assert "val loss per epoch" in browser.evaluate("detail.innerText")
        browser.evaluate("document.querySelector('#duplicates a').click()")
        assert "Candidate #1" in browser.wait_for(
            "detail.innerText.includes('#1') && detail.innerText"
        )
        assert f"worker\t{WORKER}" in browser.evaluate("detail.innerText")
        assert (
            browser.evaluate("document.querySelectorAll('#detail td i, #candidates td i').length")
            == 0
        )
        assert not browser.errors, browser.errors


def test_a_one_epoch_curve_draws_its_point(tmp_path):
    config = SearchConfig(space="nsc", evaluations=2, batch=2, evaluator=TABULAR)
    with create_run(tmp_path / "one", config) as store:
        cid = store.add_candidate(*single_layer("(1,1,3,0,0)"), 0, 1.0, None)
        curve = [{"epoch": 1, "val_accuracy": 71.5, "val_loss": 0.9}]
        store.complete(cid, Result(accuracy=71.5, curve=curve), 71.5, None)
    page = write_report(tmp_path / "one", tmp_path / "one.html")
    with opened(tmp_path, page, f"#c{cid}") as browser:
        browser.wait_for("!detail.hidden && detail.innerText")
        charts = "[...document.querySelectorAll('#detail svg.chart')]"
        marks = f"{charts}.map((svg) => svg.querySelectorAll('circle').length)"
        assert browser.evaluate(marks) == [1, 1]  # val_accuracy and val_loss, one point each
        assert not browser.errors, browser.errors


def test_the_page_formats_and_labels_numbers_as_show_does(tmp_path, capsys):
    config = SearchConfig(space="nsc", evaluations=4, batch=2, evaluator=TABULAR)
    values = [(71.25, 0.0123456, 12345.678), (64.5, 1.5, 250.126), (123.456, 0.000987, 3.0)]
    with create_run(tmp_path / "numbers", config) as store:
        codes = ("(1,1,3,0,0)", "(1,1,1,0,0)", "(1,2,3,0,0)")
        for code, (accuracy, flops, latency) in zip(codes, values, strict=True):
            cid = store.add_candidate(*single_layer(code), 0, 1.0, None)
            metrics = {"flops": flops, "latency_ms": latency}
            store.complete(cid, Result(accuracy=accuracy, metrics=metrics), accuracy, None)
    assert cli.main(["show", str(tmp_path / "numbers")]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert "GFLOPs" in shown[1] and "latency (ms)" in shown[1]
    shown_cells = [line.split()[2:6] for line in shown[2:]]
    page = write_report(tmp_path / "numbers", tmp_path / "numbers.html")
    with opened(tmp_path, page) as browser:
        headers = browser.evaluate(
            "[...document.querySelectorAll('#leaderboard th')].map((th) => th.innerText)"
        )
        assert headers[5:] == ["accuracy (%)", "GFLOPs", "latency (ms)", "reward"]
        cells = browser.evaluate(
            "[...document.querySelectorAll('#leaderboard tbody tr')]"
            ".map((tr) => [...tr.cells].slice(5).map((td) => td.innerText))"
        )
    expected = [
        [format_metric(a), format_metric(f, "flops"), format_metric(lat), format_metric(a)]
        for a, f, lat in sorted(values, reverse=True)
    ]
    assert cells == expected  # the page's rule is show's (blockqnn.evaluation.format_metric)
    # show's columns: reward, accuracy, flops, latency
    assert shown_cells == [[e[3], e[0], e[1], e[2]] for e in expected]


def test_query_parameters_set_the_initial_order_and_filter(nsc_run, tmp_path):
    page = write_report(nsc_run, tmp_path / "report.html")
    with opened(tmp_path, page, "?sort=id&order=desc&state=complete") as browser:
        shown = browser.evaluate(ROW_IDS)
        assert shown == sorted(shown, reverse=True) and len(shown) == 40 - 3
        assert browser.evaluate(f"[...{ROWS}].every((r) => r.className === 'complete')")


def test_nb201_page(tabular_runs, tmp_path):
    page = write_report(tabular_runs[0], tmp_path / "nb201.html")
    store, _ = open_run(tabular_runs[0])
    with store:
        count = len(store.candidates())
    with opened(tmp_path, page) as browser:
        assert browser.evaluate(f"{ROWS}.length") == count
        settings = browser.evaluate("document.getElementById('config').innerText")
        assert "NAS-Bench-201" in settings and "max index" not in settings
        evaluator = browser.evaluate("document.getElementById('evaluator').innerText")
        assert "valid-accuracy" in evaluator and "{" not in evaluator
        headers = browser.evaluate("document.querySelector('#candidates thead').innerText")
        assert "test accuracy" in headers
        assert browser.evaluate("document.querySelectorAll('#leaderboard tbody tr').length") == 10
        browser.evaluate("location.hash = '#c7'")
        assert "nothing to train" in browser.wait_for("!detail.hidden && detail.innerText")
        assert browser.evaluate("document.querySelectorAll('#charts svg.chart').length") == 2
        assert not browser.errors, browser.errors
        assert_no_network(browser, page.resolve().as_uri())


def test_comparison_page(tabular_runs, tmp_path):
    page = tmp_path / "compare.html"
    runs = [str(run) for run in tabular_runs]
    assert cli.main(["report", *runs, "-o", str(page)]) == 0
    archs = []
    for run in tabular_runs:
        store, _ = open_run(run)
        with store:
            archs.append([c.arch for c in store.candidates()])
    row = next(i for i, pair in enumerate(zip(*archs, strict=False)) if pair[0] != pair[1])
    with opened(tmp_path, page) as browser:
        columns = "document.querySelectorAll('#side-by-side .run-column').length"
        assert browser.evaluate(columns) == 2
        legend = browser.evaluate("document.getElementById('charts').innerText")
        assert "qlearning best so far" in legend and "random best so far" in legend
        assert archs[0][row] in browser.evaluate(f"{ROWS}[{row}].innerText")
        browser.evaluate("""(() => { const s = document.getElementById('run-choice');
            s.value = '1'; s.dispatchEvent(new Event('change')); })()""")
        assert archs[1][row] in browser.evaluate(f"{ROWS}[{row}].innerText")
        browser.evaluate(f"location.hash = '#r1-c{row + 1}'")
        assert archs[1][row] in browser.wait_for("!detail.hidden && detail.innerText")
        assert not browser.errors, browser.errors
        assert_no_network(browser, page.resolve().as_uri())


def test_ten_thousand_candidates(tmp_path):
    build_nsc_run(tmp_path / "big", evaluations=10_000, batch=64)
    page = write_report(tmp_path / "big", tmp_path / "big.html")
    start = time.monotonic()
    with opened(tmp_path, page) as browser:
        assert browser.wait_for(f"{ROWS}.length === 10000", timeout_s=60)
        loaded = time.monotonic() - start
        start = time.monotonic()
        browser.evaluate("document.querySelector('#candidates th[data-column=reward]').click()")
        assert browser.evaluate(f"{ROWS}.length") == 10_000
        sorted_in = time.monotonic() - start
        assert not browser.errors, browser.errors
    # generous bounds for a busy 2-core machine (about 2 s and 1 s when idle)
    assert loaded < 30 and sorted_in < 20, (loaded, sorted_in)


def test_screenshot_shows_drawings_and_charts(nsc_run, tmp_path):
    page = write_report(nsc_run, tmp_path / "report.html")
    shot = tmp_path / "report.png"
    command = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        f"--user-data-dir={tmp_path / 'shot-profile'}", f"--screenshot={shot}",
        "--window-size=1280,2200", page.resolve().as_uri(),
    ]  # fmt: skip
    subprocess.run(command, capture_output=True, timeout=120, check=True)
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 2200)
    conv_fill = tuple(int(FILLS["conv"][i : i + 2], 16) for i in (1, 3, 5))
    conv_pixels = sum(n for n, rgb in image.getcolors(maxcolors=1 << 22) if rgb == conv_fill)
    assert conv_pixels > 500, "no block drawings (convolution boxes) in the leaderboard"


def test_empty_run_page(tmp_path):
    config = SearchConfig(space="nsc", evaluations=4, batch=2, evaluator=TABULAR)
    create_run(tmp_path / "empty", config).close()
    page = write_report(tmp_path / "empty", tmp_path / "r.html")
    with opened(tmp_path, page) as browser:
        text = browser.evaluate("document.body.innerText")
        assert "No completed candidates yet." in text and "0 of 4 finished" in text
        assert not browser.errors, browser.errors


# -- live -------------------------------------------------------------------------------


def test_live_page_shows_a_candidate_added_after_it_opened(hand_run, tmp_path):
    server = serve.make_server(hand_run, port=0)
    host, port = server.server_address[:2]
    assert host == "127.0.0.1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with Browser(tmp_path / "profile") as browser:
            browser.open(f"http://{host}:{port}/")
            browser.wait_for(f"{ROWS}.length === 5")
            store, _ = open_run(hand_run)
            with store:
                cid = store.add_candidate(*single_layer("(1,3,1,0,0)"), 3, 0.1, None)
                store.complete(cid, Result(accuracy=99.0, metrics={"flops": 0.05}), 42.0, None)
            browser.wait_for(f"{ROWS}.length === 6 && {ROW_IDS}.includes({cid})")
            assert browser.wait_for(f"document.querySelector('#leaderboard a').hash === '#c{cid}'")
            assert not browser.errors, browser.errors
            assert_no_network(browser, f"http://{host}:{port}/")
            (hand_run / "run.db").unlink()  # the page says what went wrong, the table stays
            meta = "document.getElementById('meta').textContent"
            said = browser.wait_for(f"{meta}.startsWith('live: no update') && {meta}")
            assert f"{hand_run / 'run.db'}" in said and browser.evaluate(f"{ROWS}.length") == 6
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


#: Seconds a step of a served page may take on a loaded machine (each is a few ms idle).
LOADED_S = 120


def test_serve_command_serves_data_and_stops_on_ctrl_c(hand_run):
    port = free_port()
    command = [sys.executable, "-m", "blockqnn", "report", str(hand_run), "--serve",
               "--port", str(port)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # the line comes once the port is bound (or the output ends if the command failed)
        assert f"http://127.0.0.1:{port}/" in process.stdout.readline()
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/data.json", timeout=LOADED_S
        ) as reply:
            data = json.load(reply)
        assert len(data["runs"][0]["rows"]) == 5
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=LOADED_S) as reply:
            assert 'data-live="1"' in reply.read().decode()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=LOADED_S) == 0
        assert process.stderr.read() == ""
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@contextlib.contextmanager
def served(run_dir: Path) -> Iterator[tuple[str, int]]:
    """The live report of ``run_dir`` served on a thread: (host, port)."""
    server = serve.make_server(run_dir, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[:2]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=LOADED_S)


def get(host: str, port: int, path: str, host_header: str | None = None) -> tuple[int, bytes]:
    """Status and body of ``GET path`` (an error status too), with a chosen Host header."""
    connection = http.client.HTTPConnection(host, port, timeout=LOADED_S)
    try:
        connection.putrequest("GET", path, skip_host=host_header is not None)
        if host_header is not None:
            connection.putheader("Host", host_header)
        connection.endheaders()
        reply = connection.getresponse()
        return reply.status, reply.read()
    finally:
        connection.close()


def test_an_idle_connection_blocks_no_other_request(hand_run, monkeypatch):
    monkeypatch.setattr(serve, "TIMEOUT_S", 2.0)
    with served(hand_run) as (host, port), socket.create_connection((host, port)) as idle:
        idle.sendall(b"GET /data.json HTTP/1.1\r\n")  # and never the rest
        started = time.monotonic()
        status, body = get(host, port, "/data.json")
        assert status == 200 and len(json.loads(body)["runs"][0]["rows"]) == 5
        assert time.monotonic() - started < LOADED_S
        idle.settimeout(LOADED_S)
        assert idle.recv(1) == b""  # the silent connection was dropped after TIMEOUT_S


def test_only_loopback_host_names_are_served(hand_run):
    with served(hand_run) as (host, port):
        for name in (f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST"):
            assert get(host, port, "/data.json", name)[0] == 200, name
        for name in ("attacker.example", f"attacker.example:{port}", "localhost:1", ""):
            status, body = get(host, port, "/data.json", name)
            assert status == 403 and b"Host not allowed" in body, name
            assert b"rows" not in body


@pytest.mark.parametrize("damage", ["removed", "corrupt"])
def test_an_unreadable_run_is_answered_with_an_error_and_serving_goes_on(hand_run, damage, caplog):
    database = hand_run / "run.db"
    with served(hand_run) as (host, port):
        assert get(host, port, "/data.json")[0] == 200
        if damage == "removed":
            database.unlink()
        else:
            database.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4096)
        for _ in range(2):  # logged once, answered every time
            status, body = get(host, port, "/data.json")
            assert status == 503, body
            assert str(database) in json.loads(body)["error"]
        assert get(host, port, "/")[0] == 200
    assert len([r for r in caplog.records if str(database) in r.getMessage()]) == 1


@pytest.mark.parametrize("while_server", ["reading", "writing"])
def test_a_client_that_hangs_up_is_no_error(hand_run, while_server, monkeypatch, capfd, caplog):
    caplog.set_level(logging.DEBUG, logger=serve.__name__)
    big = {"runs": [], "filler": "x" * (32 << 20)}  # more than the sockets' buffers hold
    monkeypatch.setattr(serve, "payload", lambda dirs: big)
    request = b"GET /data.json HTTP/1.1\r\nHost: localhost\r\n"
    with served(hand_run) as (host, port):
        with socket.create_connection((host, port)) as client:
            client.sendall(request + (b"\r\n" if while_server == "writing" else b""))
            time.sleep(0.5)  # the server waits for the headers' end, or to write on
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        deadline = time.monotonic() + LOADED_S  # closed with a reset: the server notices
        while "hung up" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.1)
        assert get(host, port, "/")[0] == 200
    assert "hung up" in caplog.text
    assert "Traceback" not in capfd.readouterr().err


def test_serve_refuses_a_port_out_of_range(hand_run, capsys):
    assert cli.main(["report", str(hand_run), "--serve", "--port", "70000"]) == 2
    assert capsys.readouterr().err == (
        "blockqnn report: error: cannot serve on 127.0.0.1:70000 (--port must be in 0-65535)\n"
    )


def test_data_is_read_again_only_when_the_database_changed(hand_run, monkeypatch):
    reads = []
    monkeypatch.setattr(serve, "payload", lambda dirs: reads.append(dirs) or {"runs": []})
    data = serve._DataCache([hand_run])
    assert json.loads(data.get()) == {"runs": []}
    data.get()
    assert len(reads) == 1
    store, _ = open_run(hand_run)
    with store:
        store.set_meta("status", "running")
    data.get()
    assert len(reads) == 2


def test_serve_refuses_a_port_in_use(hand_run, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli.main(["report", str(hand_run), "--serve", "--port", str(port)]) == 2
    assert f"cannot serve on 127.0.0.1:{port}" in capsys.readouterr().err


# -- command ----------------------------------------------------------------------------


def test_report_command(nsc_run, tabular_runs, tmp_path, capsys):
    out = tmp_path / "nsc.html"
    assert cli.main(["report", str(nsc_run), "-o", str(out)]) == 0
    html = out.read_text()
    markup = re.sub(r"<script\b.*?</script>", "", html, flags=re.S)  # the script: in Chromium
    refs = re.findall(r"""(?:src|href)\s*=\s*["']?([^"' >]+)""", markup, flags=re.I)
    assert all(ref.startswith(("data:", "#")) for ref in refs), refs
    assert "<script src" not in html and "@import" not in html and "url(" not in markup
    assert html.count("<script") == 2  # the data and the page's script, both inline
    assert cli.main(["report", str(tabular_runs[1])]) == 0
    assert (tabular_runs[1] / "report.html").exists()
    capsys.readouterr()
    assert cli.main(["report", str(tmp_path / "nothing")]) == 2
    assert "no run database there" in capsys.readouterr().err


def test_a_candidate_stopped_at_a_low_rung_shows_its_estimate(tmp_path):
    table = str(shared_file("nb201", "cifar10_12ep_200ep.csv"))
    low, high = "test-accuracy-12ep", "test-accuracy-200ep"
    run_dir = tmp_path / "rungs"
    argv = ["search", "--space", "nb201", "--table", table, "--reward-column", high,
            "--rung-columns", f"{low},{high}", "--rungs", "12,200", "--evaluations", "20",
            "--run-dir", str(run_dir), "--no-progress"]  # fmt: skip
    assert cli.main(argv) == 0
    store, _ = open_run(run_dir)
    with store:
        candidates = [c for c in store.candidates() if c.reused_from is None]
    stopped = next(c for c in candidates if c.reward is None)
    measured = next(c for c in candidates if c.reward is not None)
    page = write_report(run_dir, tmp_path / "rungs.html")
    with opened(tmp_path, page, f"#c{stopped.id}") as browser:
        text = browser.wait_for("!detail.hidden && detail.innerText")
        told = stopped.extra["estimate"]["reward"]
        assert f"reward\t~{told:.3f} (estimated: stopped at rung 0)" in text
        browser.evaluate(f"location.hash = '#c{measured.id}'")
        text = browser.wait_for(f"detail.innerText.includes('#{measured.id}') && detail.innerText")
        assert f"reward\t{measured.reward:.3f}\n" in text
        assert not browser.errors, browser.errors
