"""A search run's report as ONE self-contained HTML file (or several runs compared).

The page embeds the runs' data (:func:`blockqnn.report.data.run_data`) as JSON and a small
hand-written script (``report.js``) that renders it: settings and progress, the best
blocks with their drawings, reward curves against candidate index and wall time with the
epsilon stages shaded, accuracy against FLOPs with the Pareto front, the mean reward per
layer choice, a sortable and filterable table of all candidates, the failures and a
detail view per candidate (``#c123``; ``#r1-c123`` for the second run of a comparison).

Drawings: the best :data:`~blockqnn.report.data.DRAWN` candidates of each run are drawn
by the drawing engine (Graphviz when installed) and inlined as ``data:`` images; the
script draws any other candidate from its compact graph when its detail view opens, so a
10,000-candidate page stays small. The page makes no network request (style and script
are inline); the live page (:mod:`blockqnn.report.serve`) fetches only ``data.json``.
Query parameters ``sort``, ``order=desc``, ``state`` and ``q`` set the table's initial
order and filters.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any

from blockqnn.files import write_text
from blockqnn.report.data import run_data

logger = logging.getLogger(__name__)

RunDirs = str | Path | Sequence[str | Path]

_STATES = ("complete", "failed", "running", "pending", "reused")

_BODY = """<h1>{title}</h1>
<p class="meta" id="meta"></p>
<nav><a href="#overview">Overview</a><a href="#best">Best blocks</a><a href="#charts">Charts</a>
<a href="#all">All candidates</a><a href="#failures">Failures</a></nav>
<noscript><p class="note">This report needs JavaScript to show its data.</p></noscript>
<section><h2>Overview</h2><div id="overview"></div></section>
<section><h2>Best blocks</h2><div id="best"></div></section>
<section><h2>Charts</h2><div id="charts"></div></section>
<section id="all"><h2>All candidates</h2>
<div class="filters"><select id="run-choice" hidden></select>
<label>state <select id="state-filter"><option value="">all</option>{states}</select></label>
<label>codes contain
<input id="text-filter" type="search" placeholder="e.g. (2,1,3 or nor_conv"></label>
<span id="shown"></span></div>
<div class="scroll"><table id="candidates"><thead></thead><tbody></tbody></table></div>
</section>
<section><h2>Failed candidates</h2><div id="failures"></div></section>
<aside id="detail" hidden></aside>
"""


def write_report(run_dirs: RunDirs, path: str | Path) -> Path:
    """Write the HTML report of one run directory (or a comparison of several) to ``path``;
    return ``path``. Works for NSC-block and NAS-Bench-201 runs, finished or not. Raises
    StoreError if a directory holds no readable run, and WriteError (``path`` left as it
    was) if the file cannot be written."""
    path = Path(path)
    write_text(path, report_html(run_dirs))
    logger.info("wrote report of %s to %s", run_dirs, path)
    return path


def as_list(run_dirs: RunDirs) -> list[Path]:
    """One run directory or several, as a list."""
    if isinstance(run_dirs, str | Path):
        return [Path(run_dirs)]
    return [Path(d) for d in run_dirs]


def payload(run_dirs: RunDirs) -> dict[str, Any]:
    """The data the page renders: ``{"runs": [run_data, ...]}``."""
    return {"runs": [run_data(run_dir) for run_dir in as_list(run_dirs)]}


def report_html(run_dirs: RunDirs, live: bool = False) -> str:
    """The report page as HTML text: the data embedded, or (``live``) fetched from
    ``data.json`` every two seconds."""
    dirs = as_list(run_dirs)
    names = ", ".join(d.resolve().name for d in dirs)
    title = f"BlockQNN run{'s' if len(dirs) > 1 else ''} {names}"
    data = "null" if live else json.dumps(payload(dirs), separators=(",", ":"))
    states = "".join(f'<option value="{s}">{s}</option>' for s in _STATES)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<title>{escape(title)}</title>\n<link rel="icon" href="data:,">\n'
        f"<style>{_asset('report.css')}</style>\n</head>\n"
        f'<body data-live="{int(live)}">\n'
        + _BODY.format(title=escape(title), states=states)
        + '<script id="blockqnn-data" type="application/json">'
        + data.replace("<", "\\u003c")
        + f"</script>\n<script>{_asset('report.js')}</script>\n</body>\n</html>\n"
    )


def _asset(name: str) -> str:
    return resources.files("blockqnn.report").joinpath(name).read_text(encoding="utf-8")
