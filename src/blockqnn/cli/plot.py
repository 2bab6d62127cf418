"""``blockqnn plot DIR [DIR ...] -o FILE``: learning curves of runs on one plot."""

from __future__ import annotations

import argparse
from pathlib import Path

from blockqnn.report.curves import METRICS


def register(subparsers) -> None:
    p = subparsers.add_parser("plot", help="plot the learning curves of one or more runs")
    p.add_argument("run_dirs", nargs="+", type=Path, metavar="DIR", help="run directories")
    p.add_argument("-o", "--output", required=True, type=Path, help="file to write: .png or .svg")
    p.add_argument("--labels", type=_labels, help="legend names, comma-separated, one per run")
    p.add_argument("--metric", choices=METRICS, default="reward", help="value plotted")
    p.set_defaults(func=run)


def _labels(text: str) -> list[str]:
    return [label.strip() for label in text.split(",")]


def run(args: argparse.Namespace) -> int:
    from blockqnn.report.curves import plot_runs

    plot_runs(args.run_dirs, args.output, labels=args.labels, metric=args.metric)
    print(f"wrote {args.output}")
    return 0
