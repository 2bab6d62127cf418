"""Learning curves of search runs, as in the paper's Fig. 8a and Fig. 10.

Per iteration: the mean reward of the candidates proposed in it, and the best (top-1) and
the mean of the five best (top-5) rewards found so far, with the epsilon stages shaded.
Several runs (e.g. Q-learning and random search) share one
plot. The numbers are available as plain data (:func:`run_curves`).
"""

from __future__ import annotations

import heapq
import io
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import NamedTuple

from blockqnn.config import SearchConfig
from blockqnn.errors import UserError
from blockqnn.search import open_run
from blockqnn.store import Candidate, CandidateState

logger = logging.getLogger(__name__)

METRICS = ("reward", "accuracy")
TOP = 5


class PlotError(ValueError, UserError):
    """A plot that cannot be made as asked (an output type, labels, no runs)."""


@dataclass(frozen=True)
class IterationStats:
    """The numbers of one iteration of a run."""

    iteration: int  #: the iteration (0-based, as stored) the candidates were proposed in
    count: int  #: completed candidates of this iteration that have the metric
    mean: float  #: their mean
    top1: float  #: the best value of this and all earlier iterations
    top5: float  #: mean of the ``TOP`` best distinct architectures so far (fewer if fewer)
    epsilon: float | None  #: the exploration rate they were proposed with


@dataclass(frozen=True)
class RunCurves:
    """A run's configuration and its per-iteration numbers."""

    run_dir: Path
    config: SearchConfig
    stats: list[IterationStats]


def iteration_stats(
    candidates: Iterable[Candidate], metric: str = "reward", *, with_reused: bool = True
) -> list[IterationStats]:
    """Per-iteration numbers of ``candidates`` (any order), in iteration order.

    Only COMPLETE candidates with a value of ``metric`` (``"reward"`` or ``"accuracy"``)
    count; reused duplicates count in the iteration's mean (the agent sampled them) when
    ``with_reused`` (a run that counts them in its budget), and an architecture (its
    canonical key) counts once in the top-k. Iterations without such candidates are left
    out.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    done = [
        c
        for c in candidates
        if c.state == CandidateState.COMPLETE and (with_reused or c.reused_from is None)
    ]
    valued = sorted((c for c in done if getattr(c, metric) is not None), key=_order)
    return stats_of(Point(c.iteration, c.key, getattr(c, metric), c.epsilon) for c in valued)


class Point(NamedTuple):
    """One told value: its iteration, the architecture's key, the value, the epsilon."""

    iteration: int
    key: str
    value: float
    epsilon: float | None = None


def stats_of(points: Iterable[Point]) -> list[IterationStats]:
    """Per-iteration numbers of ``points`` in iteration order (each iteration's points
    together); an architecture (``key``) counts once in the top-k."""
    best: dict[str, float] = defaultdict(lambda: float("-inf"))
    return [
        _iteration(iteration, list(group), best)
        for iteration, group in groupby(points, key=lambda p: p.iteration)
    ]


def _iteration(iteration: int, members: list[Point], best: dict[str, float]) -> IterationStats:
    """The numbers of one iteration; updates ``best`` (key -> best value so far)."""
    for p in members:
        best[p.key] = max(best[p.key], p.value)
    top = heapq.nlargest(TOP, best.values())
    mean, top5 = sum(p.value for p in members) / len(members), sum(top) / len(top)
    return IterationStats(iteration, len(members), mean, top[0], top5, members[0].epsilon)


def _order(candidate: Candidate) -> tuple[int, int]:
    return (candidate.iteration, candidate.id)


def run_curves(run_dir: str | Path, metric: str = "reward") -> RunCurves:
    """The per-iteration numbers of the run in ``run_dir`` (StoreError if there is none)."""
    store, config = open_run(run_dir)
    with store:
        candidates = store.candidates()
    stats = iteration_stats(candidates, metric, with_reused=config.count_duplicates)
    return RunCurves(Path(run_dir), config, stats)


def plot_runs(
    run_dirs: Sequence[str | Path],
    path: str | Path,
    labels: Sequence[str] | None = None,
    metric: str = "reward",
) -> Path:
    """Plot the curves of ``run_dirs`` into ``path`` (``.png`` or ``.svg``, by suffix).

    ``labels`` name the runs in the legend (default: directory name and strategy); there
    must be one per run. Raises ValueError for a bad suffix or label count.
    """
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("png", "svg"):
        raise PlotError(f"cannot plot to {path.name!r}: use a .png or .svg file")
    runs = [run_curves(run_dir, metric) for run_dir in run_dirs]
    path.write_bytes(render_curves(runs, labels, metric, fmt))
    logger.info("plotted %d run(s) into %s", len(runs), path)
    return path


def render_curves(
    runs: Sequence[RunCurves],
    labels: Sequence[str] | None = None,
    metric: str = "reward",
    fmt: str = "png",
) -> bytes:
    """The plot of ``runs`` as ``fmt`` bytes (see :func:`plot_runs`)."""
    fig = curves_figure(runs, labels, metric)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=100 if fmt == "svg" else 150)
    return buffer.getvalue()


def curves_figure(
    runs: Sequence[RunCurves], labels: Sequence[str] | None = None, metric: str = "reward"
):
    """The matplotlib Figure of :func:`render_curves`.

    The x axis counts iterations when every run has the same batch size, else candidates
    proposed (iteration x batch). Epsilon stages are shaded across the plot when every run
    has the same stages; otherwise each run's stages are a strip in its colour at the
    bottom, so no run's schedule is shown as another's.
    """
    from matplotlib.figure import Figure

    if not runs:
        raise PlotError("no runs to plot")
    names = list(labels) if labels is not None else [_default_label(run) for run in runs]
    if len(names) != len(runs):
        raise PlotError(f"{len(names)} label(s) for {len(runs)} run(s)")
    fig = Figure(figsize=(9, 4.8), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    xlabel, scales = x_axis(runs)
    bands = [epsilon_bands(run.stats) for run in runs]
    shared = all(b == bands[0] and s == scales[0] for b, s in zip(bands, scales, strict=True))
    for index, (run, name, scale) in enumerate(zip(runs, names, scales, strict=True)):
        ends = positions(run.stats, scale, run.config.batch)
        if shared and index == 0:
            _shade_epsilon(ax, bands[0], scale, ends)
        elif not shared:
            _strip_epsilon(ax, bands[index], scale, ends, index, f"C{index}")
        _plot_run(ax, run.stats, name, f"C{index}", list(ends.values()))
    _decorate(ax, runs, metric, xlabel)
    return fig


def x_axis(runs: Sequence[RunCurves]) -> tuple[str, list[int]]:
    """The x axis label, and per run the x units one iteration spans: 1 (iterations) when
    all runs share a batch size, else the run's batch size (candidates proposed)."""
    batches = [run.config.batch for run in runs]
    if len(set(batches)) == 1:
        return f"Iteration (batch of {batches[0]})", [1] * len(runs)
    return "Candidates proposed", batches


def _default_label(run: RunCurves) -> str:
    return f"{run.run_dir.name} ({run.config.strategy})"


def positions(stats: Sequence[IterationStats], scale: int, batch: int) -> dict[int, float]:
    """Where each iteration's point sits on the x axis (iteration -> x): at the end of
    the iteration, ``(iteration + 1) * scale``; the last one, when it holds fewer than
    ``batch`` candidates (a partial iteration), at the share of it they fill."""
    ends = {s.iteration: float((s.iteration + 1) * scale) for s in stats}
    if stats and stats[-1].count < batch:
        last = stats[-1]
        ends[last.iteration] = (last.iteration + last.count / batch) * scale
    return ends


def _plot_run(ax, stats: list[IterationStats], name: str, colour: str, x: list[float]) -> None:
    mark = {"marker": "o", "ms": 4} if len(x) == 1 else {}  # one point draws no line
    ax.plot(
        x, [s.mean for s in stats], color=colour, alpha=0.45, lw=1, label=f"{name} mean", **mark
    )
    ax.plot(x, [s.top1 for s in stats], color=colour, lw=2, label=f"{name} top-1", **mark)
    ax.plot(
        x, [s.top5 for s in stats], color=colour, lw=1.5, ls="--", label=f"{name} top-{TOP}", **mark
    )


def epsilon_bands(stats: Sequence[IterationStats]) -> list[tuple[int, int, float]]:
    """Runs of consecutive iterations with one epsilon: ``(first, last, epsilon)``, with
    iterations 0-based; iterations without an epsilon are left out."""
    bands: list[tuple[int, int, float]] = []
    for s in stats:
        if s.epsilon is None:
            continue
        if bands and bands[-1][2] == s.epsilon:
            bands[-1] = (bands[-1][0], s.iteration, s.epsilon)
        else:
            bands.append((s.iteration, s.iteration, s.epsilon))
    return bands


def _span(first: int, last: int, scale: int, ends: dict[int, float]) -> tuple[float, float]:
    """The x extent of iterations ``first..last``: from the start of ``first`` to the point
    of ``last`` (``ends``: :func:`positions`), never past its candidates."""
    return first * scale, ends[last]


def _shade_epsilon(
    ax, bands: list[tuple[int, int, float]], scale: int, ends: dict[int, float]
) -> None:
    """Grey bands, darker for more exploration, each labelled with its epsilon."""
    for index, (first, last, epsilon) in enumerate(bands):
        start, end = _span(first, last, scale, ends)
        ax.axvspan(start, end, color="0.5", alpha=0.04 + 0.16 * epsilon, lw=0)
        ax.text(
            (start + end) / 2,
            1.0,
            f"ε={epsilon:.1f}" if index == 0 else f"{epsilon:.1f}",
            transform=ax.get_xaxis_transform(),
            ha="center",
            va="bottom",
            fontsize=7,
            color="0.35",
        )


def _strip_epsilon(
    ax, bands: list[tuple[int, int, float]], scale: int, ends: dict[int, float], row: int,
    colour: str,
) -> None:  # fmt: skip
    """One run's epsilon stages as a strip in its colour along the bottom (row ``row``),
    darker for more exploration."""
    height = 0.03
    for first, last, epsilon in bands:
        start, end = _span(first, last, scale, ends)
        ax.axvspan(
            start, end, ymin=row * height, ymax=(row + 1) * height,
            color=colour, alpha=0.1 + 0.6 * epsilon, lw=0,
        )  # fmt: skip


def _decorate(ax, runs: Sequence[RunCurves], metric: str, xlabel: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Reward" if metric == "reward" else "Accuracy (%)")
    ax.grid(alpha=0.3)
    if any(run.stats for run in runs):
        ax.legend(fontsize=8, loc="lower right", ncol=len(runs))
    else:
        ax.text(0.5, 0.5, "no completed candidates yet", transform=ax.transAxes, ha="center")
