"""What the HTML report shows of a run, as plain JSON-compatible data.

:func:`run_data` reads a run and returns everything the page's script renders: readable
settings, progress, every candidate (one row each, every stored metric), a compact
drawing graph per candidate, drawings of the best ones, the reward curves against
candidate index and wall time, the accuracy/cost scatters with their Pareto fronts and
the mean reward per layer choice. The static page embeds this data; ``--serve`` sends it
again as ``/data.json`` whenever the page asks.

The numbers are computed here (not in the page's script) so that they are tested.
"""

from __future__ import annotations

import base64
import functools
import math
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from shlex import quote
from typing import Any

from blockqnn.config import SearchConfig, make_space
from blockqnn.evaluation import metric_label
from blockqnn.pareto import front, objectives, steered_reward_text
from blockqnn.report.draw import render
from blockqnn.report.graph import FILLS, STROKES, Graph, block_graph, cell_graph
from blockqnn.runlock import shown_status
from blockqnn.search import open_run
from blockqnn.space import Space
from blockqnn.store import Candidate, CandidateState, rank

#: Best candidates (the run's ranking) drawn with the full drawing engine and inlined; the page's
#: script draws every other candidate itself from its compact graph.
DRAWN = 10
#: Stored metrics shown first, in this order; others (any metric an evaluator names, and
#: numeric evaluator extras) follow by name.
METRIC_ORDER = ("accuracy", "test_accuracy", "flops", "params", "density", "latency_ms")

_SPACE_NAMES = {"nsc": "BlockQNN blocks (Network Structure Codes)", "nb201": "NAS-Bench-201 cells"}
_NSC_ONLY = ("max_index", "components")
_LABELS = {"flops": "GFLOPs"}
_COLUMNS = ("id", "iteration", "epsilon", "state", "reward")
_TAIL_COLUMNS = ("layers", "reused_from", "cost_s", "time_s", "worker", "attempts", "arch")


def is_cost(metric: str) -> bool:
    """Whether ``metric`` is plotted as a cost against accuracy: FLOPs and every latency in
    milliseconds (``latency_ms``, ``latency_batch_ms``), not a measurement's settings."""
    return metric == "flops" or (metric.startswith("latency") and metric.endswith("_ms"))


def run_data(run_dir: str | Path) -> dict[str, Any]:
    """Everything the report page shows of the run in ``run_dir`` (StoreError if none)."""
    store, config = open_run(run_dir)
    with store:
        candidates, status = store.candidates(), shown_status(run_dir, store.get_meta("status"))
        curves = {c.id: store.curve(c.reused_from or c.id) for c in candidates}
    best = rank(candidates, objectives=config.objectives)[:DRAWN]
    graph = functools.partial(candidate_graph, space=make_space(config), kind=config.space)
    graphs = {c.id: graph(c.arch) for c in candidates}
    metrics = metric_names(candidates)
    return {
        "name": Path(run_dir).resolve().name,
        "path": str(run_dir),
        "space": config.space,
        "strategy": config.strategy,
        "status": status,
        "settings": settings_rows(config, candidates),
        "evaluator": evaluator_rows(config),
        "notes": notes(config, candidates),
        "progress": progress_rows(status, config, candidates),
        **_table(candidates, metrics, graphs, curves),
        **_drawings(best, graphs),
        "curves": _curves(candidates, config),
        "scatters": cost_scatters(candidates, metrics),
        "choices": choice_rewards(candidates, graphs),
        "train_command": train_command(run_dir, config),
        "generated": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _table(
    candidates: Sequence[Candidate],
    metrics: Sequence[str],
    graphs: dict[int, Graph],
    curves: dict[int, list[dict[str, Any]]],
) -> dict[str, Any]:
    """The all-candidates table: ``columns``, ``rows``, the ``labels`` of metric columns
    (:func:`blockqnn.evaluation.metric_label`) and the detail views' ``details``
    (``curves``: each candidate's stored per-epoch curve)."""
    by_key: dict[str, list[int]] = defaultdict(list)
    for c in candidates:
        by_key[c.key].append(c.id)
    start = min((c.created for c in candidates), default=0.0)
    return {
        "metrics": list(metrics),
        "columns": [*_COLUMNS, *metrics, *_TAIL_COLUMNS],
        "labels": {name: metric_label(name) for name in [*metrics, "cost_s"]},
        "rows": [candidate_row(c, metrics, graphs[c.id], start) for c in candidates],
        "details": {c.id: candidate_details(c, by_key[c.key], curves[c.id]) for c in candidates},
    }


def _drawings(best: Sequence[Candidate], graphs: dict[int, Graph]) -> dict[str, Any]:
    """Every candidate's compact graph (``vocabulary``, ``graphs``, colours) for the page's
    drawer, and the full drawings of the ``top`` ones."""
    vocabulary = _Vocabulary()
    encoded = {cid: vocabulary.encode(graph) for cid, graph in graphs.items()}
    return {
        "vocabulary": vocabulary.entries,
        "graphs": encoded,
        "fills": FILLS,
        "strokes": STROKES,
        "top": [c.id for c in best],
        "drawings": {c.id: drawing(graphs[c.id]) for c in best},
    }


# -- candidates -------------------------------------------------------------------------


def candidate_graph(arch: str, space: Space, kind: str) -> Graph:
    """The drawing graph of a stored architecture in its run's ``space`` (``kind`` is the
    configuration's name of it, ``"nsc"`` or ``"nb201"``)."""
    parsed = space.parse(arch)
    return block_graph(parsed) if kind == "nsc" else cell_graph(parsed)


def operations(graph: Graph) -> list[str]:
    """The choices a drawing graph shows: NSC layer labels (``Conv,3``, ``Add``) and
    NAS-Bench-201 edge operations (``none`` included); not the fixed input/output nodes."""
    layers = [n.label for n in graph.nodes if n.id.startswith("l")]
    return layers + [e.label for e in graph.edges if e.label]


def layer_count(graph: Graph) -> int:
    """Layers of a block, or operations other than ``none`` of a cell."""
    return sum(1 for op in operations(graph) if op != "none")


def candidate_metrics(candidate: Candidate) -> dict[str, float]:
    """Every numeric metric stored for ``candidate``, by name (unmeasured ones left out)."""
    named: dict[str, Any] = {"accuracy": candidate.accuracy, **candidate.metrics}
    named.update(candidate.extra)
    return {k: v for k, v in named.items() if _is_number(v)}


def _is_number(value: Any) -> bool:
    """A finite int or float (JSON has no NaN or infinity; bools are no metric)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def metric_names(candidates: Iterable[Candidate]) -> list[str]:
    """The metrics stored for at least one candidate: :data:`METRIC_ORDER`, then by name."""
    found = {name for c in candidates for name in candidate_metrics(c)}
    known = [name for name in METRIC_ORDER if name in found]
    return known + sorted(found - set(METRIC_ORDER))


def candidate_row(c: Candidate, metrics: Sequence[str], graph: Graph, start: float) -> list[Any]:
    """The candidate's cells in the order of ``run_data()["columns"]``."""
    values = candidate_metrics(c)
    finished = None if c.finished is None else round(c.finished - start, 3)
    return [
        c.id, c.iteration, c.epsilon, c.state.value, c.reward,
        *(values.get(name) for name in metrics),
        layer_count(graph), c.reused_from, c.cost_s, finished, c.worker, c.attempts, c.arch,
    ]  # fmt: skip


def candidate_details(
    c: Candidate, same_key: Sequence[int], curve: list[dict[str, Any]]
) -> dict[str, Any]:
    """What only the detail view shows: timings, error, isomorphic duplicates (the other
    ids of ``same_key``, the candidates with its canonical key), the per-epoch ``curve``
    (a reused duplicate shows its source's) and non-numeric extras."""
    return {
        "curve": curve,
        "created": _clock(c.created),
        "started": _clock(c.started),
        "finished": _clock(c.finished),
        "error": c.error,
        "duplicates": [cid for cid in same_key if cid != c.id],
        "extra": {k: v for k, v in c.extra.items() if not _is_number(v)},
    }


def _clock(stamp: float | None) -> str | None:
    return None if stamp is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


class _Vocabulary:
    """Distinct ``[label, kind]`` pairs of nodes and edges, so each graph is a few ints."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, str]] = []
        self._index: dict[tuple[str, str], int] = {}

    def _id(self, label: str, kind: str) -> int:
        pair = (label, kind)
        if pair not in self._index:
            self._index[pair] = len(self.entries)
            self.entries.append(pair)
        return self._index[pair]

    def encode(self, graph: Graph) -> list[list[int]]:
        """``[node vocabulary ids, flat (source, target, vocabulary id) triples]``."""
        position = {n.id: i for i, n in enumerate(graph.nodes)}
        nodes = [self._id(n.label, n.kind) for n in graph.nodes]
        edges = [
            x
            for e in graph.edges
            for x in (position[e.src], position[e.dst], self._id(e.label, e.kind))
        ]
        return [nodes, edges]


@functools.lru_cache(maxsize=1024)
def drawing(graph: Graph) -> str:
    """The full drawing of ``graph`` as an SVG ``data:`` URI (cached: ``--serve`` redraws)."""
    svg = base64.b64encode(render(graph, "svg")).decode("ascii")
    return f"data:image/svg+xml;base64,{svg}"


# -- settings and progress --------------------------------------------------------------


def settings_rows(config: SearchConfig, candidates: Sequence[Candidate]) -> list[list[str]]:
    """``[setting, value]`` rows of the search settings that apply to the run's space."""
    rows = [
        ["space", _SPACE_NAMES.get(config.space, config.space)],
        ["strategy", _strategy(config)],
        ["budget", f"{config.evaluations} candidates, {config.batch} per iteration"],
        ["seed", str(config.seed)],
        ["reward", _reward(config, candidates)],
        *_objectives(config),
        ["isomorphic duplicates", _duplicates(config)],
        ["attempts per candidate", str(config.max_attempts)],
    ]
    if config.space == "nsc":
        rows += [[name.replace("_", " "), _text(getattr(config, name))] for name in _NSC_ONLY]
    return rows


def evaluator_rows(config: SearchConfig) -> list[list[str]]:
    """``[setting, value]`` rows of the evaluator's settings, those left unset omitted."""
    return [
        [name.replace("_", " "), _text(value)]
        for name, value in config.evaluator.items()
        if value is not None
    ]


def _duplicates(config: SearchConfig) -> str:
    if not config.dedupe:
        return "trained again"
    budget = "count in the budget" if config.count_duplicates else "free: outside the budget"
    return f"reuse the stored result ({budget})"


def _strategy(config: SearchConfig) -> str:
    options = ", ".join(f"{k}={_text(v)}" for k, v in sorted(config.strategy_options.items()))
    return f"{config.strategy} ({options})" if options else config.strategy


def _reward(config: SearchConfig, candidates: Sequence[Candidate]) -> str:
    """The reward formula with the penalty terms that apply (weighted and measured)."""
    measured = {name for c in candidates for name in candidate_metrics(c)}
    weighted = {name: term for name, term in config.reward.terms.items() if term.weight}
    if not candidates:  # before any result: as configured
        measured = set(weighted)
    terms = [
        f" − {term.weight:g}·ln({_ratio(name, term.reference)})"
        for name, term in weighted.items()
        if name in measured
    ]
    if config.objectives:
        steered = steered_reward_text(objectives(config.objectives), config.steer_weight)
        return steered + ("; fixed terms" + "".join(terms) if terms else "")
    if terms:
        return "accuracy" + "".join(terms)
    if weighted:
        return f"accuracy ({' and '.join(_LABELS.get(n, n) for n in weighted)} not measured)"
    return "accuracy (no penalty terms: μ = ρ = 0)"


def _ratio(name: str, reference: float) -> str:
    label = _LABELS.get(name, name)
    return label if reference == 1 else f"{label} / {reference:g}"


def _objectives(config: SearchConfig) -> list[list[str]]:
    """Rows of the multi-objective settings that are set."""
    rows = []
    if config.objectives:
        steering = f"reward steered by random weights up to {config.steer_weight:g}"
        rows.append(["objectives", f"{', '.join(config.objectives)} ({steering})"])
    if config.constraints:
        limits = ", ".join(f"{name} ≤ {limit:g}" for name, limit in config.constraints.items())
        rows.append(["constraints", limits])
    return rows


def _text(value: Any) -> str:
    """A setting's value as short text: lists comma-joined, mappings as ``k=v``."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ",".join(_text(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={_text(v)}" for k, v in value.items()) or "none"
    return str(value)


def notes(config: SearchConfig, candidates: Sequence[Candidate]) -> list[str]:
    """Explanations of columns that are empty for a reason (the test accuracy)."""
    if any(c.test_accuracy is not None for c in candidates):
        return []
    if config.evaluator.get("kind") == "train":
        return [
            "No test accuracy: the search trains briefly and rewards validation accuracy "
            "only, never touching the test set. blockqnn train --block RUN:ID reports a "
            "candidate's test accuracy after the final training."
        ]
    if config.evaluator.get("test_column") is None:
        return ["No test accuracy: the search was not given the table's test column "
                "(--test-column)."]  # fmt: skip
    return ["No test accuracy yet: no candidate has completed."]


def progress_rows(
    status: Any, config: SearchConfig, candidates: Sequence[Candidate]
) -> list[list[Any]]:
    """``[quantity, value]`` rows: status, budget (reused duplicates count only with
    ``count_duplicates``), counts per state, timings."""
    counts = dict.fromkeys((s.value for s in CandidateState), 0)
    for c in candidates:
        counts[c.state.value] += 1
    reused = sum(1 for c in candidates if c.reused_from is not None)
    spent = counts["complete"] + counts["failed"] - (0 if config.count_duplicates else reused)
    costs = [c.cost_s for c in _evaluated(candidates) if c.cost_s is not None]
    return [
        ["status", status if status is not None else "–"],
        ["budget", f"{spent} of {config.evaluations} finished"],
        *([f"candidates {state}", count] for state, count in counts.items()),
        ["reused duplicates", reused],
        ["wall time (first proposed → last finished)", _wall_time(candidates)],
        ["mean evaluation cost", seconds(sum(costs) / len(costs)) if costs else "–"],
        ["total evaluation cost", seconds(sum(costs)) if costs else "–"],
    ]


def _evaluated(candidates: Iterable[Candidate]) -> list[Candidate]:
    """Complete candidates that were evaluated (not reused duplicates)."""
    return [c for c in candidates if c.state == CandidateState.COMPLETE and c.reused_from is None]


def _wall_time(candidates: Sequence[Candidate]) -> str:
    ends = [c.finished for c in candidates if c.finished is not None]
    if not ends:
        return "–"
    return seconds(max(ends) - min(c.created for c in candidates))


def seconds(value: float) -> str:
    """A duration such as ``0.25 s``, ``12.0 s``, ``3 min 05 s`` or ``2 h 04 min``."""
    if value < 60:
        return f"{value:.2f} s" if value < 1 else f"{value:.1f} s"
    minutes, secs = divmod(round(value), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


# -- charts -----------------------------------------------------------------------------


def _curves(candidates: Sequence[Candidate], config: SearchConfig) -> dict[str, Any]:
    """The reward curves of the candidates that count against the budget: reused
    duplicates only when ``count_duplicates`` (otherwise they were free re-proposals)."""
    counted = [c for c in candidates if config.count_duplicates or c.reused_from is None]
    return {"index": reward_curve(counted, "index"), "time": reward_curve(counted)}


def reward_curve(candidates: Sequence[Candidate], axis: str = "time") -> dict[str, list]:
    """Rewards against candidate index (``axis="index"``: 1-based position in proposal
    order) or wall time (seconds from the first proposal to each result).

    ``points``: ``[x, reward, best so far, epsilon]`` per complete candidate in ``x``
    order; ``means``: ``[x, mean reward]`` per iteration, at the iteration's last point;
    ``bands``: ``[first x, last x, epsilon]`` of consecutive points with one epsilon.
    """
    start = min((c.created for c in candidates), default=0.0)
    position: dict[int, float] = (
        {c.id: i for i, c in enumerate(candidates, start=1)}
        if axis == "index"
        else {c.id: c.finished - start for c in candidates if c.finished is not None}
    )
    done = [c for c in candidates if c.state == CandidateState.COMPLETE and c.reward is not None]
    done.sort(key=lambda c: (position[c.id], c.id))
    points, best = [], float("-inf")
    for c in done:
        best = max(best, c.reward)
        points.append([round(position[c.id], 3), c.reward, best, c.epsilon])
    return {"points": points, "means": _iteration_means(done, position), "bands": _bands(points)}


def _iteration_means(done: Sequence[Candidate], position: dict[int, float]) -> list[list[float]]:
    groups: dict[int, list[Candidate]] = defaultdict(list)
    for c in done:
        groups[c.iteration].append(c)
    means = [
        [round(max(position[c.id] for c in group), 3), sum(c.reward for c in group) / len(group)]
        for group in groups.values()
    ]
    return sorted(means)


def _bands(points: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """Consecutive points with one epsilon; each band reaches to where the next begins."""
    bands: list[list[Any]] = []
    for x, _, _, epsilon in points:
        if epsilon is None:
            continue
        if bands and bands[-1][2] == epsilon:
            bands[-1][1] = x
        else:
            if bands:
                bands[-1][1] = x
            bands.append([x, x, epsilon])
    return bands


def cost_scatters(candidates: Sequence[Candidate], metrics: Sequence[str]) -> list[dict]:
    """Accuracy against each cost metric (FLOPs, latencies) measured: ``points`` as
    ``[cost, accuracy, id]`` of evaluated candidates and the indices of the Pareto
    ``front`` (:func:`blockqnn.pareto.front`: most accurate at least cost), by cost."""
    scatters = []
    for cost in filter(is_cost, metrics):
        points = []
        for c in _evaluated(candidates):
            values = candidate_metrics(c)
            if cost in values and "accuracy" in values:
                points.append([values[cost], values["accuracy"], c.id])
        best = front(range(len(points)), lambda i, p=points: (p[i][1], -p[i][0]))
        order = sorted(best, key=lambda i, p=points: (p[i][0], -p[i][1]))
        scatters.append({"cost": cost, "points": points, "front": order})
    return scatters


def choice_rewards(
    candidates: Sequence[Candidate], graphs: dict[int, Graph]
) -> list[dict[str, Any]]:
    """Per layer choice (``Conv,3``, ``MaxP,1``, an NB201 operation): how many evaluated
    candidates use it, their mean reward and the mean reward of the others, best first."""
    scored = [c for c in _evaluated(candidates) if c.reward is not None]
    using: dict[str, list[float]] = defaultdict(list)
    for c in scored:
        for op in set(operations(graphs[c.id])):
            using[op].append(c.reward)
    total = sum(c.reward for c in scored)
    rows = []
    for op, rewards in using.items():
        others = len(scored) - len(rewards)
        rows.append({
            "choice": op,
            "count": len(rewards),
            "mean": sum(rewards) / len(rewards),
            "others": (total - sum(rewards)) / others if others else None,
        })  # fmt: skip
    return sorted(rows, key=lambda row: (-row["mean"], row["choice"]))


def train_command(run_dir: str | Path, config: SearchConfig) -> str | None:
    """The command that trains a candidate (``{id}`` in it) fully with the run's network:
    ``blockqnn train`` takes the dataset, stacking and widths from the run ``--block``
    names. None when the run trained no networks (a table look-up search)."""
    if config.space != "nsc" or config.evaluator.get("kind") != "train":
        return None
    run = quote(str(run_dir))
    return f"blockqnn train --block {run}:{{id}} --epochs 30 --out {run}/final-{{id}}"
