"""Draw a block (or a NAS-Bench-201 cell) as a DAG in the style of the paper's figures.

``Input`` on top, one box per layer labelled like ``Conv,3``, the ``Concat`` of every leaf
and ``Output`` at the bottom; boxes coloured by kind (convolution, pooling, identity,
merge). Two back ends give the same nodes and edges:

- ``graphviz``: DOT text rendered by Graphviz's ``dot`` program (needs it on PATH);
- ``python``: the layered layout of :mod:`blockqnn.report.layout`, written as SVG text
  directly, or drawn with matplotlib (Agg) for PNG.

``engine="auto"`` takes Graphviz when ``dot`` is on PATH and the python back end
otherwise, so drawing never fails for lack of Graphviz.
"""

from __future__ import annotations

import io
import logging
import shutil
import subprocess
from collections.abc import Sequence
from html import escape
from pathlib import Path

from blockqnn.errors import UserError
from blockqnn.report.graph import FILLS, STROKES, Edge, Graph, Node, to_graph
from blockqnn.report.layout import Box, Layout, Point, bezier, label_point, layout

logger = logging.getLogger(__name__)

ENGINES = ("auto", "graphviz", "python")
FORMATS = ("svg", "png")
FONT = "Helvetica, Arial, sans-serif"
FONT_PX = 13.0
TITLE_H = 28.0
PNG_DPI = 200  #: the python back end's PNG is drawn at 2x (100 dpi = 1 px per unit)
_DASHED = frozenset({"none"})

Drawable = Graph | str | Sequence[Sequence[int]]


class DrawError(ValueError, UserError):
    """A drawing that cannot be made: unknown engine or format, or Graphviz failed."""


def draw_block(
    block: Drawable, path: str | Path, *, title: str | None = None, engine: str = "auto"
) -> str:
    """Draw ``block`` into ``path`` (``.svg`` or ``.png``, by suffix); return the engine used.

    ``block`` is NSC codes (text, a known block's name or 5-tuples), a NAS-Bench-201 arch
    string or a :class:`~blockqnn.report.graph.Graph`. ``engine`` is ``"auto"``,
    ``"graphviz"`` or ``"python"``. Raises :class:`DrawError` (a ValueError) for a bad
    suffix or engine and the parsers' errors for an invalid block.
    """
    path = Path(path)
    used = resolve_engine(engine)
    data = render(block, path.suffix.lower().lstrip("."), title=title, engine=used)
    path.write_bytes(data)
    logger.info("drew %s with %s", path, used)
    return used


def render(
    block: Drawable, fmt: str = "svg", *, title: str | None = None, engine: str = "auto"
) -> bytes:
    """The drawing of ``block`` as ``fmt`` (``"svg"`` or ``"png"``) bytes.

    Arguments and errors as for :func:`draw_block` (``engine`` may also be ``"auto"``).
    """
    if fmt not in FORMATS:
        raise DrawError(f"cannot draw to {fmt!r}: use a .svg or .png file")
    graph = to_graph(block)
    if resolve_engine(engine) == "graphviz":
        return run_dot(to_dot(graph, title), fmt)
    placed = layout(graph)
    if fmt == "svg":
        return to_svg(graph, placed, title).encode()
    return to_png(graph, placed, title)


def resolve_engine(engine: str) -> str:
    """``"graphviz"`` or ``"python"`` for a requested engine; DrawError if unavailable."""
    if engine not in ENGINES:
        raise DrawError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    has_dot = shutil.which("dot") is not None
    if engine == "auto":
        return "graphviz" if has_dot else "python"
    if engine == "graphviz" and not has_dot:
        raise DrawError(
            "engine 'graphviz' needs Graphviz's dot program on PATH "
            "(apt-get install graphviz), or use engine 'python'"
        )
    return engine


# -- Graphviz ------------------------------------------------------------------------


def to_dot(graph: Graph, title: str | None = None) -> str:
    """The graph as Graphviz DOT text, top to bottom."""
    label = f", label={_q(title)}, labelloc=t, fontsize=14" if title else ""
    lines = [
        "digraph block {",
        f'  graph [rankdir=TB, nodesep=0.25, ranksep=0.35, bgcolor="white", fontname="Helvetica"'
        f"{label}];",
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11,'
        ' height=0.35, color="#555555"];',
        '  edge [arrowsize=0.7, fontname="Helvetica", fontsize=10];',
    ]
    lines += [
        f"  {_q(n.id)} [label={_q(n.label)}, fillcolor={_q(FILLS[n.kind])}];" for n in graph.nodes
    ]
    lines += [_dot_edge(edge) for edge in graph.edges]
    return "\n".join([*lines, "}"]) + "\n"


def _dot_edge(edge: Edge) -> str:
    colour = _q(STROKES[edge.kind])
    attrs = f"color={colour}, fontcolor={colour}"
    if edge.label:
        attrs += f", label={_q(' ' + edge.label)}"
    if edge.kind in _DASHED:
        attrs += ", style=dashed"
    return f"  {_q(edge.src)} -> {_q(edge.dst)} [{attrs}];"


def _q(text: str) -> str:
    """A DOT double-quoted string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def run_dot(dot_text: str, fmt: str) -> bytes:
    """Render DOT text with Graphviz's ``dot``; DrawError with its message if it fails."""
    dpi = ["-Gdpi=192"] if fmt == "png" else []
    proc = subprocess.run(
        ["dot", f"-T{fmt}", *dpi],
        input=dot_text.encode(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        raise DrawError(f"dot failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


# -- pure-Python SVG ------------------------------------------------------------------


def to_svg(graph: Graph, placed: Layout, title: str | None = None) -> str:
    """SVG text of a laid-out graph (standalone: white background, no external refs)."""
    top = TITLE_H if title else 0.0
    width, height = placed.width, placed.height + top
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.1f} {height:.1f}" font-family="{FONT}" font-size="{FONT_PX:g}">',
        _svg_markers({edge.kind for edge in graph.edges}),
        '<rect width="100%" height="100%" fill="white"/>',
    ]
    if title:
        parts.append(_svg_text(width / 2, top / 2 + 2, title, 'font-weight="bold"'))
    parts.append(f'<g transform="translate(0,{top:.1f})">')
    edges = list(zip(graph.edges, placed.routes, strict=True))
    parts += [_svg_edge(edge, route) for edge, route in edges]
    parts += [_svg_node(node, placed.boxes[node.id]) for node in graph.nodes]
    parts += [_svg_edge_label(edge, route) for edge, route in edges if edge.label]
    return "\n".join([*parts, "</g>", "</svg>"]) + "\n"


def _svg_markers(kinds: set[str]) -> str:
    markers = [
        f'<marker id="arrow-{kind}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        f'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{STROKES[kind]}"/>'
        "</marker>"
        for kind in sorted(kinds)
    ]
    return "<defs>" + "".join(markers) + "</defs>"


def _svg_edge(edge: Edge, route: tuple[Point, ...]) -> str:
    first, *rest = bezier(route)
    d = f"M{first[0]:.1f},{first[1]:.1f} C" + " ".join(f"{x:.1f},{y:.1f}" for x, y in rest)
    dash = ' stroke-dasharray="4,3"' if edge.kind in _DASHED else ""
    return (
        f'<path d="{d}" fill="none" stroke="{STROKES[edge.kind]}" stroke-width="1.3"{dash} '
        f'marker-end="url(#arrow-{edge.kind})"/>'
    )


def _svg_node(node: Node, box: Box) -> str:
    rect = (
        f'<rect x="{box.x - box.w / 2:.1f}" y="{box.y - box.h / 2:.1f}" width="{box.w:.1f}" '
        f'height="{box.h:.1f}" rx="6" fill="{FILLS[node.kind]}" stroke="#555555"/>'
    )
    return f'<g class="node">{rect}{_svg_text(box.x, box.y, node.label)}</g>'


def _svg_edge_label(edge: Edge, route: tuple[Point, ...]) -> str:
    x, y = label_point(route)
    style = f'font-size="11" fill="{STROKES[edge.kind]}" stroke="white" stroke-width="4" '
    return _svg_text(x, y, edge.label, style + 'paint-order="stroke"')


def _svg_text(x: float, y: float, text: str, attrs: str = "") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="middle" dominant-baseline="central" '
        f"{attrs}>{escape(text)}</text>"
    )


# -- matplotlib PNG -------------------------------------------------------------------


def to_png(graph: Graph, placed: Layout, title: str | None = None) -> bytes:
    """PNG bytes of a laid-out graph drawn with matplotlib (Agg; no pyplot state)."""
    from matplotlib.figure import Figure

    top = TITLE_H if title else 0.0
    fig = Figure(figsize=(placed.width / 100, (placed.height + top) / 100), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, placed.width)
    ax.set_ylim(placed.height, -top)
    ax.axis("off")
    for edge, route in zip(graph.edges, placed.routes, strict=True):
        _mpl_edge(ax, edge, route)
    for node in graph.nodes:
        _mpl_node(ax, node, placed.boxes[node.id])
    if title:
        ax.text(placed.width / 2, -top / 2, title, ha="center", va="center", weight="bold")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=PNG_DPI, facecolor="white")
    return buffer.getvalue()


def _points(px: float) -> float:
    """Font size in points for ``px`` pixels at 100 dpi."""
    return px * 72 / 100


def _mpl_edge(ax, edge: Edge, route: tuple[Point, ...]) -> None:
    from matplotlib.patches import FancyArrowPatch
    from matplotlib.path import Path as MplPath

    points = bezier(route)
    codes = [MplPath.MOVETO] + [MplPath.CURVE4] * (len(points) - 1)
    colour, style = STROKES[edge.kind], "--" if edge.kind in _DASHED else "-"
    arrow = FancyArrowPatch(
        path=MplPath(points, codes), arrowstyle="-|>", mutation_scale=10, color=colour
    )
    arrow.set_linestyle(style)
    ax.add_patch(arrow)
    if edge.label:
        x, y = label_point(route)
        box = {"facecolor": "white", "edgecolor": "none", "pad": 1}
        ax.text(
            x, y, edge.label, ha="center", va="center", color=colour, bbox=box, fontsize=_points(11)
        )


def _mpl_node(ax, node: Node, box: Box) -> None:
    from matplotlib.patches import FancyBboxPatch

    corner = (box.x - box.w / 2, box.y - box.h / 2)
    patch = FancyBboxPatch(
        corner,
        box.w,
        box.h,
        boxstyle="round,pad=0,rounding_size=6",
        facecolor=FILLS[node.kind],
        edgecolor="#555555",
        zorder=2,
    )
    ax.add_patch(patch)
    ax.text(box.x, box.y, node.label, ha="center", va="center", zorder=3, fontsize=_points(FONT_PX))
