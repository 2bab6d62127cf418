"""Blocks and cells as plain drawable graphs (what is drawn, not how).

A :class:`Graph` lists its nodes in topological order (every edge goes from an earlier
node to a later one). An NSC block becomes, in the style of the paper's figures: an
``Input`` node, one node per non-terminal layer labelled like ``Conv,3`` or ``Add``, a
``Concat`` node joining the leaves when there are several, and an ``Output`` node below
(a single leaf feeds the output directly). A
NAS-Bench-201 cell becomes its 4 nodes and 6 edges labelled with their operations.

Pure Python: never imports torch or matplotlib.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from blockqnn import blocks, nb201, nsc
from blockqnn.nsc import LayerType

#: Fill colour of each node kind (DARTS-style: one colour per role).
FILLS: dict[str, str] = {
    "io": "#ffffff",
    "conv": "#a6cee3",
    "pool": "#fdbf6f",
    "identity": "#e0e0e0",
    "merge": "#b2df8a",
    "node": "#cab2d6",
}

#: Stroke colour of each edge kind (NB201 edges are coloured by their operation).
STROKES: dict[str, str] = {
    "plain": "#555555",
    "conv": "#1f78b4",
    "pool": "#e07b00",
    "identity": "#777777",
    "none": "#bbbbbb",
}

_LAYER_KINDS: dict[LayerType, str] = {
    LayerType.CONV: "conv",
    LayerType.MAX_POOL: "pool",
    LayerType.AVG_POOL: "pool",
    LayerType.IDENTITY: "identity",
    LayerType.ADD: "merge",
    LayerType.CONCAT: "merge",
    LayerType.RELU: "identity",
    LayerType.BATCH_NORM: "identity",
}

_OP_KINDS: dict[str, str] = {
    "none": "none",
    "skip_connect": "identity",
    "nor_conv_1x1": "conv",
    "nor_conv_3x3": "conv",
    "avg_pool_3x3": "pool",
}


@dataclass(frozen=True)
class Node:
    """One drawn node: a unique ``id``, its text and its kind (a key of :data:`FILLS`)."""

    id: str
    label: str
    kind: str


@dataclass(frozen=True)
class Edge:
    """A directed edge; ``label`` is drawn beside it, ``kind`` is a key of :data:`STROKES`."""

    src: str
    dst: str
    label: str = ""
    kind: str = "plain"


@dataclass(frozen=True)
class Graph:
    """Nodes in topological order and the edges between them."""

    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]


def block_graph(block: Sequence[nsc.Layer]) -> Graph:
    """The drawing graph of a valid NSC block (paper style, see the module docstring)."""
    layers = nsc.body(block)
    nodes = [Node("in", "Input", "io")]
    nodes += [Node(f"l{x.index}", x.label(), _LAYER_KINDS[LayerType(x.type)]) for x in layers]
    edges = [Edge(_layer_id(p), f"l{x.index}") for x in layers for p in x.preds]
    leaves = nsc.leaves(block)
    if len(leaves) > 1:
        nodes.append(Node("concat", "Concat", "merge"))
        edges += [Edge(f"l{i}", "concat") for i in leaves]
        edges.append(Edge("concat", "out"))
    else:
        edges.append(Edge(f"l{leaves[0]}", "out"))
    nodes.append(Node("out", "Output", "io"))
    return Graph(tuple(nodes), tuple(edges))


def _layer_id(index: int) -> str:
    return "in" if index == 0 else f"l{index}"


def cell_graph(arch: str) -> Graph:
    """The drawing graph of a NAS-Bench-201 arch string (raises :class:`nb201.NB201Error`).

    Nodes 0..3 are labelled ``Input``, ``1``, ``2``, ``Output``; each of the 6 edges
    carries its operation (``none`` edges are drawn too, in a faint colour).
    """
    ops = nb201.parse_ops(arch)
    names = {0: "Input", nb201.NUM_NODES - 1: "Output"}
    nodes = [Node(f"n{i}", names.get(i, str(i)), "node") for i in range(nb201.NUM_NODES)]
    edges = [
        Edge(f"n{src}", f"n{dst}", op, _OP_KINDS[op])
        for op, (dst, src) in zip(ops, nb201.EDGES, strict=True)
    ]
    return Graph(tuple(nodes), tuple(edges))


def to_graph(
    arch: Graph | str | Sequence[Sequence[int]], max_index: int = nsc.DEFAULT_MAX_INDEX
) -> Graph:
    """The graph of ``arch``: a :class:`Graph`, NSC codes (text, a known block's name or a
    sequence of 5-tuples) or a NAS-Bench-201 arch string (text containing ``~``).

    Raises ValueError (NSCError / NB201Error) or KeyError (unknown name) with a message
    saying what is wrong.
    """
    if isinstance(arch, Graph):
        return arch
    if isinstance(arch, str):
        if "~" in arch:
            return cell_graph(arch)
        return block_graph(blocks.resolve(arch, max_index))
    return block_graph(nsc.as_block(arch, max_index))
