"""``blockqnn report RUN... [-o FILE | --serve]``: a self-contained HTML report of one run,
several runs side by side, or a live page served while a search runs."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report", help="write a run's (or several runs') HTML report, or serve it live"
    )
    p.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN", help="run directories")
    p.add_argument(
        "-o", "--output", type=Path, help="HTML file (default: the first RUN's report.html)"
    )
    p.add_argument(
        "--serve", action="store_true", help="serve a live page on 127.0.0.1 until Ctrl-C"
    )
    p.add_argument("--port", type=int, default=8000, help="port of --serve (default 8000)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.serve:
        from blockqnn.report.serve import serve

        serve(args.run_dirs, args.port)
        return 0
    from blockqnn.report.html import write_report

    path = write_report(args.run_dirs, args.output or args.run_dirs[0] / "report.html")
    print(f"wrote {path}")
    return 0
