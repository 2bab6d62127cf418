"""A search run's report as ONE self-contained HTML file.

The page holds the configuration, progress and timings, a leaderboard of the best blocks
(with their drawings), the learning curves and the failed candidates with their errors.
It needs no network: the style sheet is inline, images are ``data:`` URIs, and there are
no scripts or web fonts. Every text from the run database is HTML-escaped.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from blockqnn.config import SearchConfig, make_space
from blockqnn.evaluation import format_metric
from blockqnn.report.curves import RunCurves, iteration_stats, render_curves
from blockqnn.report.draw import render
from blockqnn.report.graph import Graph, block_graph, cell_graph
from blockqnn.search import open_run
from blockqnn.store import Candidate, CandidateState

logger = logging.getLogger(__name__)

LEADERBOARD_SIZE = 10
_MISSING = "–"

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       margin: 24px auto; max-width: 1240px; padding: 0 16px; color: #222; }
h1 { font-size: 22px; margin-bottom: 2px; }
h2 { font-size: 17px; border-bottom: 2px solid #ddd; padding-bottom: 3px; margin-top: 28px; }
.meta { color: #666; margin-top: 0; }
.columns { display: flex; gap: 32px; flex-wrap: wrap; align-items: flex-start; }
table { border-collapse: collapse; }
th, td { border-bottom: 1px solid #e3e3e3; padding: 4px 10px; text-align: left;
         vertical-align: top; }
th { background: #f4f6f8; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, pre { font: 12px/1.35 ui-monospace, Menlo, Consolas, monospace; }
code.arch { display: block; max-width: 300px; word-break: break-all; }
pre { margin: 0; white-space: pre-wrap; word-break: break-word; max-width: 760px; }
#config td:last-child { max-width: 460px; word-break: break-all; }
img.block { max-width: 320px; max-height: 420px; }
img.curves { width: 100%; max-width: 1100px; }
"""


class _Html(str):
    """Markup that goes into the page as it is (every other text is escaped)."""


def write_report(run_dir: str | Path, path: str | Path) -> Path:
    """Write the HTML report of the run in ``run_dir`` to ``path``; return ``path``.

    Works for NSC-block and NAS-Bench-201 runs, finished or not. Raises StoreError if
    ``run_dir`` holds no readable run.
    """
    path = Path(path)
    path.write_text(report_html(run_dir), encoding="utf-8")
    logger.info("wrote report of %s to %s", run_dir, path)
    return path


def report_html(run_dir: str | Path) -> str:
    """The report page of the run in ``run_dir`` as HTML text."""
    store, config = open_run(run_dir)
    with store:
        candidates, best = store.candidates(), store.top(LEADERBOARD_SIZE)
        metrics = store.metric_names()
        status = store.get_meta("status")
    curves = RunCurves(Path(run_dir), config, iteration_stats(candidates))
    overview = _Html(
        '<div class="columns">'
        + _section("Configuration", _config_table(config))
        + _section("Progress", _progress_table(status, config, candidates))
        + "</div>"
    )
    body = [
        overview,
        _section(
            f"Leaderboard (best {LEADERBOARD_SIZE} by reward)", _leaderboard(best, config, metrics)
        ),
        _section("Learning curves", _curves(curves)),
        _section("Failed candidates", _failed(candidates)),
    ]
    return _page(f"BlockQNN run {Path(run_dir).resolve().name}", str(run_dir), body)


def _page(title: str, run_dir: str, body: Sequence[str]) -> str:
    generated = time.strftime("%Y-%m-%d %H:%M:%S")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<h1>{escape(title)}</h1>\n"
        f'<p class="meta">{escape(run_dir)} &middot; generated {generated}</p>\n'
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def _section(title: str, content: str) -> _Html:
    return _Html(f"<section><h2>{escape(title)}</h2>\n{content}\n</section>")


def _table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], table_id: str, numeric: int = 0
) -> _Html:
    """A table; cells are escaped unless they are :class:`_Html`. The last ``numeric``
    columns are right-aligned."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    lines = [f'<table id="{table_id}">', f"<thead><tr>{head}</tr></thead>", "<tbody>"]
    for row in rows:
        first = len(row) - numeric
        cells = "".join(_cell(value, index >= first) for index, value in enumerate(row))
        lines.append(f"<tr>{cells}</tr>")
    return _Html("\n".join([*lines, "</tbody></table>"]))


def _cell(value: Any, numeric: bool) -> str:
    text = value if isinstance(value, _Html) else escape(str(value))
    return f'<td class="num">{text}</td>' if numeric else f"<td>{text}</td>"


# -- configuration and progress -------------------------------------------------------


def _config_table(config: SearchConfig) -> _Html:
    rows = [
        (name, json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value)
        for name, value in config.to_dict().items()
    ]
    return _table(("setting", "value"), rows, "config")


def _progress_table(status: Any, config: SearchConfig, candidates: list[Candidate]) -> _Html:
    counts = {state.value: 0 for state in CandidateState}
    for c in candidates:
        counts[c.state.value] += 1
    free = 0 if config.count_duplicates else sum(c.reused_from is not None for c in candidates)
    finished = counts["complete"] + counts["failed"] - free
    evaluated = [c for c in candidates if c.reused_from is None and c.cost_s is not None]
    costs = [c.cost_s for c in evaluated if c.state == CandidateState.COMPLETE]
    rows = [
        ("status", status if status is not None else _MISSING),
        ("budget", f"{finished} of {config.evaluations} finished"),
        *((f"candidates {state}", count) for state, count in counts.items()),
        ("reused duplicates", sum(1 for c in candidates if c.reused_from is not None)),
        ("wall time (first proposed → last finished)", _wall_time(candidates)),
        ("mean evaluation cost", _seconds(sum(costs) / len(costs)) if costs else _MISSING),
        ("total evaluation cost", _seconds(sum(costs)) if costs else _MISSING),
    ]
    return _table(("quantity", "value"), rows, "progress")


def _wall_time(candidates: list[Candidate]) -> str:
    ends = [c.finished for c in candidates if c.finished is not None]
    if not ends:
        return _MISSING
    return _seconds(max(ends) - min(c.created for c in candidates))


def _seconds(seconds: float) -> str:
    """A duration such as ``0.25 s``, ``12.0 s``, ``3 min 05 s`` or ``2 h 04 min``."""
    if seconds < 60:
        return f"{seconds:.2f} s" if seconds < 1 else f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


# -- leaderboard, curves, failures ----------------------------------------------------

_LEADER_HEADERS = ("rank", "id", "drawing", "architecture", "iteration")


def _leaderboard(best: list[Candidate], config: SearchConfig, metrics: list[str]) -> _Html:
    """The ``best`` candidates with a column for each name in ``metrics``."""
    if not best:
        return _Html('<p id="leaderboard">No completed candidates yet.</p>')
    rows = [_leader_row(rank, c, config, metrics) for rank, c in enumerate(best, start=1)]
    numeric = len(metrics) + 1
    return _table((*_LEADER_HEADERS, *metrics), rows, "leaderboard", numeric=numeric)


def _leader_row(rank: int, c: Candidate, config: SearchConfig, metrics: list[str]) -> list[Any]:
    drawing = _image(render(_graph(c.arch, config)), "image/svg+xml", f"block #{c.id}", "block")
    values = [format_metric(c.metric(name)) for name in metrics]
    return [rank, c.id, drawing, _code(c.arch), c.iteration, *values]


def _code(arch: str) -> _Html:
    return _Html(f'<code class="arch">{escape(arch)}</code>')


def _graph(arch: str, config: SearchConfig) -> Graph:
    """The drawing graph of a stored architecture in its run's space."""
    parsed = make_space(config).parse(arch)
    return block_graph(parsed) if config.space == "nsc" else cell_graph(parsed)


def _image(data: bytes, mime: str, alt: str, css_class: str) -> _Html:
    uri = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    return _Html(f'<img class="{css_class}" alt="{escape(alt)}" src="{uri}">')


def _curves(curves: RunCurves) -> _Html:
    data = render_curves([curves], labels=[curves.config.strategy], fmt="svg")
    return _image(data, "image/svg+xml", "learning curves", "curves")


def _failed(candidates: list[Candidate]) -> _Html:
    failed = [c for c in candidates if c.state == CandidateState.FAILED]
    if not failed:
        return _Html('<p id="failed">No failed candidates.</p>')
    rows = [
        (c.id, c.iteration, c.attempts, _Html(f"<pre>{escape(c.error or '')}</pre>"), _code(c.arch))
        for c in failed
    ]
    return _table(("id", "iteration", "attempts", "error", "architecture"), rows, "failed")
