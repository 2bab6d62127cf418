"""``blockqnn report DIR [-o FILE]``: a run's self-contained HTML report."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("report", help="write a run's self-contained HTML report")
    p.add_argument("run_dir", type=Path, help="run directory")
    p.add_argument("-o", "--output", type=Path, help="HTML file (default: DIR/report.html)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from blockqnn.report.html import write_report

    path = write_report(args.run_dir, args.output or args.run_dir / "report.html")
    print(f"wrote {path}")
    return 0
