"""A small layered (Sugiyama-style) layout for drawing graphs without Graphviz.

Steps: each node's rank is its longest path from a source (so the input is on top and
every edge points down); an edge spanning several ranks passes through one dummy point
per rank in between, so it bends around the nodes; a few barycenter sweeps reorder each
rank to reduce crossings (the order with the fewest crossings found is kept); each rank
is then centred horizontally. Coordinates are pixels, y growing downwards.

Pure Python: never imports matplotlib.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from itertools import pairwise

from blockqnn.report.graph import Graph

NODE_H = 28.0  #: node box height
RANK_GAP = 36.0  #: vertical space between the boxes of two ranks
LABEL_GAP = 18.0  #: extra vertical space when edges carry labels
NODE_GAP = 18.0  #: horizontal space between neighbours in a rank
CHAR_W = 7.4  #: approximate width of one label character (13 px sans-serif)
MARGIN = 16.0  #: space around the drawing
SWEEPS = 4  #: barycenter down+up sweeps
PORT_STEP = 14.0  #: horizontal space between the ends of edges meeting at one node

Point = tuple[float, float]


@dataclass(frozen=True)
class Box:
    """A node's box: centre ``(x, y)``, width ``w`` and height ``h``."""

    x: float
    y: float
    w: float
    h: float


@dataclass(frozen=True)
class Layout:
    """Where everything goes.

    ``ranks`` and ``boxes`` are keyed by node id; ``routes[i]`` is the polyline of
    ``graph.edges[i]`` from the bottom of its source box through its dummy points to the
    top of its target box (y strictly increasing).
    """

    ranks: dict[str, int]
    boxes: dict[str, Box]
    routes: tuple[tuple[Point, ...], ...]
    width: float
    height: float


def text_width(text: str) -> float:
    """Approximate pixel width of ``text`` at the drawing's font size."""
    return CHAR_W * len(text)


def layout(graph: Graph) -> Layout:
    """Lay ``graph`` out in ranks (ValueError if its nodes are not in topological order)."""
    ranks = longest_path_ranks(graph)
    chains, widths = _chains(graph, ranks)
    rows = _initial_rows(graph, ranks, chains)
    segments = [(a, b) for chain in chains for a, b in pairwise(chain)]
    rows = order_rows(rows, segments)
    gap = RANK_GAP + (LABEL_GAP if any(edge.label for edge in graph.edges) else 0.0)
    centres = _centres(rows, widths, gap)
    boxes = {n.id: Box(*centres[n.id], widths[n.id], NODE_H) for n in graph.nodes}
    routes = _routes(chains, centres, widths)
    width = max((x + widths[v] / 2 for v, (x, _) in centres.items()), default=0.0) + MARGIN
    height = 2 * MARGIN + len(rows) * (NODE_H + gap) - gap
    return Layout(ranks, boxes, routes, width, height)


def longest_path_ranks(graph: Graph) -> dict[str, int]:
    """Each node's rank: the length of the longest path reaching it (sources are 0)."""
    order = {node.id: i for i, node in enumerate(graph.nodes)}
    preds: dict[str, list[str]] = defaultdict(list)
    for edge in graph.edges:
        if order[edge.src] >= order[edge.dst]:
            raise ValueError(f"edge {edge.src} -> {edge.dst} points backwards in node order")
        preds[edge.dst].append(edge.src)
    ranks: dict[str, int] = {}
    for node in graph.nodes:
        ranks[node.id] = max((ranks[p] + 1 for p in preds[node.id]), default=0)
    return ranks


def _chains(graph: Graph, ranks: dict[str, int]) -> tuple[list[list[str]], dict[str, float]]:
    """Per edge, its vertices (source, dummies, target); and every vertex's width.

    A dummy of a labelled edge is as wide as the label, so the label gets room.
    """
    widths = {n.id: max(56.0, text_width(n.label) + 22.0) for n in graph.nodes}
    chains = []
    for i, edge in enumerate(graph.edges):
        dummies = [f"~{i}.{r}" for r in range(ranks[edge.src] + 1, ranks[edge.dst])]
        widths.update(dict.fromkeys(dummies, max(8.0, text_width(edge.label))))
        chains.append([edge.src, *dummies, edge.dst])
    return chains, widths


def _initial_rows(graph: Graph, ranks: dict[str, int], chains: list[list[str]]) -> list[list[str]]:
    """Vertices per rank: nodes in graph order, each dummy after the nodes of its rank."""
    rows: list[list[str]] = [[] for _ in range(max(ranks.values(), default=-1) + 1)]
    for node in graph.nodes:
        rows[ranks[node.id]].append(node.id)
    for chain in chains:
        start = ranks[chain[0]]
        for offset, dummy in enumerate(chain[1:-1], start=1):
            rows[start + offset].append(dummy)
    return rows


def order_rows(rows: list[list[str]], segments: list[tuple[str, str]]) -> list[list[str]]:
    """Reorder the vertices of each row by barycenter sweeps; the order with the fewest
    crossings seen (the given one included) is returned. ``segments`` join adjacent rows.
    """
    best, fewest = rows, crossings(rows, segments)
    current = rows
    for _ in range(SWEEPS):
        current = _sweep(_sweep(current, segments, down=True), segments, down=False)
        count = crossings(current, segments)
        if count < fewest:
            best, fewest = current, count
    return best


def _sweep(rows: list[list[str]], segments: list[tuple[str, str]], down: bool) -> list[list[str]]:
    """One pass sorting each row by the mean position of its neighbours in the row before."""
    rows = [list(row) for row in rows]
    neighbours: dict[str, list[str]] = defaultdict(list)
    for upper, lower in segments:
        if down:
            neighbours[lower].append(upper)
        else:
            neighbours[upper].append(lower)
    steps = range(1, len(rows)) if down else range(len(rows) - 2, -1, -1)
    for r in steps:
        fixed = {v: i for i, v in enumerate(rows[r - 1 if down else r + 1])}
        rows[r] = sorted(rows[r], key=lambda v: _barycenter(v, rows[r], neighbours, fixed))
    return rows


def _barycenter(
    vertex: str, row: list[str], neighbours: dict[str, list[str]], fixed: dict[str, int]
) -> tuple[float, int]:
    own = row.index(vertex)
    near = neighbours.get(vertex)
    mean = sum(fixed[n] for n in near) / len(near) if near else float(own)
    return (mean, own)


def crossings(rows: list[list[str]], segments: list[tuple[str, str]]) -> int:
    """How many pairs of segments between the same two rows cross."""
    position = {v: (r, i) for r, row in enumerate(rows) for i, v in enumerate(row)}
    by_row: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for upper, lower in segments:
        row, top = position[upper]
        by_row[row].append((top, position[lower][1]))
    total = 0
    for pairs in by_row.values():
        for i, (a1, b1) in enumerate(pairs):
            total += sum(1 for a2, b2 in pairs[i + 1 :] if (a1 - a2) * (b1 - b2) < 0)
    return total


def _centres(rows: list[list[str]], widths: dict[str, float], gap: float) -> dict[str, Point]:
    """Centre of every vertex: rows centred on one axis, shifted to leave the margin."""
    centres: dict[str, Point] = {}
    for r, row in enumerate(rows):
        y = MARGIN + r * (NODE_H + gap) + NODE_H / 2
        x = -(sum(widths[v] for v in row) + NODE_GAP * (len(row) - 1)) / 2
        for v in row:
            centres[v] = (x + widths[v] / 2, y)
            x += widths[v] + NODE_GAP
    left = min((x - widths[v] / 2 for v, (x, _) in centres.items()), default=0.0)
    return {v: (x - left + MARGIN, y) for v, (x, y) in centres.items()}


def _routes(
    chains: list[list[str]], centres: dict[str, Point], widths: dict[str, float]
) -> tuple[tuple[Point, ...], ...]:
    """Each edge's polyline, from a port on its source's bottom to one on its target's top."""
    starts = _ports(chains, centres, widths, outgoing=True)
    ends = _ports(chains, centres, widths, outgoing=False)
    routes = []
    for i, chain in enumerate(chains):
        top, bottom = centres[chain[0]][1] + NODE_H / 2, centres[chain[-1]][1] - NODE_H / 2
        middle = tuple(centres[v] for v in chain[1:-1])
        routes.append(((starts[i], top), *middle, (ends[i], bottom)))
    return tuple(routes)


def _ports(
    chains: list[list[str]], centres: dict[str, Point], widths: dict[str, float], outgoing: bool
) -> dict[int, float]:
    """The x of each edge's end at its source (``outgoing``) or target: a node's edges are
    spread along its box in the left-to-right order of the vertices they lead to."""
    groups: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for i, chain in enumerate(chains):
        node, neighbour = (chain[0], chain[1]) if outgoing else (chain[-1], chain[-2])
        groups[node].append((centres[neighbour][0], i))
    ports = {}
    for node, ends in groups.items():
        step = min(PORT_STEP, (widths[node] - 16.0) / max(len(ends) - 1, 1))
        for k, (_, i) in enumerate(sorted(ends)):
            ports[i] = centres[node][0] + (k - (len(ends) - 1) / 2) * step
    return ports


def label_point(route: tuple[Point, ...]) -> Point:
    """Where an edge's label goes: its middle dummy point, or the middle of a short edge."""
    if len(route) > 2:
        return route[len(route) // 2]
    (x0, y0), (x1, y1) = route
    return ((x0 + x1) / 2, (y0 + y1) / 2)


def bezier(route: tuple[Point, ...]) -> list[Point]:
    """Cubic Bézier control points through ``route`` with vertical tangents at each point:
    ``[p0, c, c, p1, c, c, p2, ...]`` (3n + 1 points for n segments); y never decreases.
    """
    points = [route[0]]
    for (x0, y0), (x1, y1) in pairwise(route):
        middle = (y0 + y1) / 2
        points += [(x0, middle), (x1, middle), (x1, y1)]
    return points
