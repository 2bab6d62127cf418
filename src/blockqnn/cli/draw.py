"""``blockqnn draw (CODES|NAME|DIR:topK|ARCH) -o FILE``: draw a block as SVG or PNG."""

from __future__ import annotations

import argparse
from collections.abc import Collection
from pathlib import Path

from blockqnn import nsc
from blockqnn.cli._blocks import add_components_option, resolve_arch
from blockqnn.config import COMPONENTS
from blockqnn.report.draw import ENGINES, Drawable


def register(subparsers) -> None:
    p = subparsers.add_parser("draw", help="draw a block (or a NAS-Bench-201 cell)")
    p.add_argument(
        "block",
        help='block codes ("(1,4,0,0,0) ..."), a known name, DIR:topK, '
        "or a NAS-Bench-201 arch string (|op~0|+...)",
    )
    p.add_argument("-o", "--output", required=True, type=Path, help="file to write: .svg or .png")
    p.add_argument("--engine", choices=ENGINES, default="auto", help="drawing back end")
    p.add_argument("--title", help="caption above the drawing")
    p.add_argument("--max-index", type=int, default=nsc.DEFAULT_MAX_INDEX)
    add_components_option(p)
    p.set_defaults(func=run)


def drawable(
    text: str, max_index: int = nsc.DEFAULT_MAX_INDEX, types: Collection[int] = nsc.PCC_TYPES
) -> Drawable:
    """What ``text`` names: a NAS-Bench-201 arch string (it starts with ``|``) as it is,
    otherwise the block or cell :func:`~blockqnn.cli._blocks.resolve_arch` finds."""
    if text.strip().startswith("|"):
        return text
    return resolve_arch(text, max_index, types)


def run(args: argparse.Namespace) -> int:
    from blockqnn.report.draw import draw_block

    engine = draw_block(
        drawable(args.block, args.max_index, COMPONENTS[args.components]),
        args.output,
        title=args.title,
        engine=args.engine,
    )
    print(f"wrote {args.output} ({engine})")
    return 0
