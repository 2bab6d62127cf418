"""Canonical renumbering of a block DAG (used by :func:`blockqnn.nsc.canonical_key`).

Nodes get colours by refinement (label, predecessor colours, successor colours) until
stable; then nodes are numbered greedily in topological order by (colour, new indices of
predecessors). Ties between interchangeable twins (same label, same predecessors, same
successors) are resolved arbitrarily, which is exact because swapping twins is an
automorphism; other ties are branched on and the smallest code wins. Branching stops
after ``MAX_BRANCHES`` complete numberings (only reachable by blocks with many identical
parallel chains); the key then stays sound (equal keys always mean isomorphic blocks) but
two numberings of such a block may, rarely, get different keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

MAX_BRANCHES = 256

Row = tuple[int, int, int, int, int]


class _Code(Protocol):
    index: int
    type: int
    kernel: int

    @property
    def preds(self) -> tuple[int, ...]: ...


def _refine(labels: list[tuple], preds: list[tuple[int, ...]], succs: list[list[int]]) -> list:
    colours = _relabel(labels)
    while True:
        sigs = [
            (
                colours[v],
                tuple(sorted(colours[p] for p in preds[v])),
                tuple(sorted(colours[s] for s in succs[v])),
            )
            for v in range(len(labels))
        ]
        new = _relabel(sigs)
        if len(set(new)) == len(set(colours)):
            return new
        colours = new


def _relabel(sigs: list) -> list[int]:
    order = {sig: rank for rank, sig in enumerate(sorted(set(sigs)))}
    return [order[sig] for sig in sigs]


def canonical_rows(layers: Sequence[_Code]) -> list[Row]:
    """Rows ``(index, type, kernel, pred1, pred2)`` of the canonical renumbering of a block
    body (no terminal), followed by the terminal row."""
    n = len(layers) + 1
    labels: list[tuple] = [(0, 0)] + [(layer.type, layer.kernel) for layer in layers]
    preds: list[tuple[int, ...]] = [()] + [layer.preds for layer in layers]
    succs: list[list[int]] = [[] for _ in range(n)]
    for v in range(1, n):
        for p in preds[v]:
            succs[p].append(v)
    colours = _refine(labels, preds, succs)
    twin_class = [(labels[v], frozenset(preds[v]), frozenset(succs[v])) for v in range(n)]
    budget = [MAX_BRANCHES]

    def rows_for(order: list[int]) -> list[Row]:
        new = {old: i for i, old in enumerate(order)}
        rows = []
        for v in order[1:]:
            ps = sorted((new[p] for p in preds[v]), reverse=True) + [0]
            rows.append((new[v], labels[v][0], labels[v][1], ps[0], ps[1]))
        return rows

    def extend(order: list[int], placed: dict[int, int]) -> list[Row]:
        while len(order) < n:
            ready = [v for v in range(n) if v not in placed and all(p in placed for p in preds[v])]
            keys = {
                v: (colours[v], sorted((placed[p] for p in preds[v]), reverse=True)) for v in ready
            }
            best = min(keys.values())
            ties = [v for v in ready if keys[v] == best]
            reps = list({twin_class[v]: v for v in reversed(ties)}.values())
            if len(reps) > 1 and budget[0] > 0:
                budget[0] -= len(reps)
                return min(extend(order + [v], {**placed, v: len(order)}) for v in reps)
            placed[reps[0]] = len(order)
            order = order + [reps[0]]
        return rows_for(order)

    rows = extend([0], {0: 0})
    return rows + [(n, 7, 0, 0, 0)]
