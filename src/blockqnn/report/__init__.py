"""Reports of search runs: block drawings, learning curves and a self-contained HTML page.

matplotlib is imported only when a PNG drawing or a plot is made.
"""

from __future__ import annotations

from blockqnn.report.curves import IterationStats, RunCurves, iteration_stats, plot_runs, run_curves
from blockqnn.report.draw import DrawError, draw_block, render
from blockqnn.report.html import write_report

__all__ = [
    "DrawError",
    "IterationStats",
    "RunCurves",
    "draw_block",
    "iteration_stats",
    "plot_runs",
    "render",
    "run_curves",
    "write_report",
]
