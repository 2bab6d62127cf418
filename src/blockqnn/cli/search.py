"""``blockqnn search``: run (or ``--resume``) a search in a run directory.

The options are parsed here (:mod:`blockqnn.cli._search_args`); what they mean, their
defaults, their checks, the resume rules and the order of work are the library's
(:mod:`blockqnn.options`, :mod:`blockqnn.resume`, :mod:`blockqnn.runner`), which the Python
API uses too. This module prints the progress bar, the summary and the exit status.
"""

from __future__ import annotations

import argparse
import logging
import sys

from blockqnn.cli._search_args import add_search_options, executor_spec, run_options
from blockqnn.execution.base import ExecutorLost
from blockqnn.runner import Hooks, resume, start
from blockqnn.search import Progress
from blockqnn.summary import all_failed, summary

logger = logging.getLogger(__name__)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "search",
        help="search for a block (or a NAS-Bench-201 cell)",
        description="Run a search in --run-dir, or continue one with --resume (which uses "
        "the stored configuration; options that contradict it are refused).",
    )
    add_search_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the search to its end; print the summary. Exit status: 0, 1 when every
    candidate failed, 3 when the cluster was lost, 130 on Ctrl-C."""
    options, execution = run_options(args), executor_spec(args)
    with ProgressBar(disabled=args.no_progress) as bar:
        hooks = Hooks(progress=bar.update)
        try:
            if args.resume:
                session = resume(args.run_dir, options, execution, hooks)
            else:
                session = start(args.run_dir, options, execution, hooks)
        except KeyboardInterrupt:
            logger.warning("interrupted: everything finished is saved; continue with --resume")
            return 130
        except ExecutorLost as exc:
            print(f"blockqnn search: {exc}", file=sys.stderr)
            print(f"(the run in {args.run_dir} is saved; --resume continues it)", file=sys.stderr)
            return 3
    print(summary(args.run_dir, session.wall_s))
    failed = all_failed(args.run_dir)
    if failed is not None:
        print(
            f"blockqnn search: error: every candidate failed; #{failed.id}: {failed.error}",
            file=sys.stderr,
        )
        return 1
    return 0


class ProgressBar:
    """A tqdm bar on stderr: evaluated/total, iteration, epsilon, best reward, ETA (made
    at the first update, which gives the total)."""

    def __init__(self, disabled: bool) -> None:
        self.disabled, self.bar = disabled, None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()

    def update(self, p: Progress) -> None:
        if self.disabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=p.total, unit="cand", dynamic_ncols=True, mininterval=0.5)
        eps = "-" if p.epsilon is None else f"{p.epsilon:.1f}"
        best = "-" if p.best_reward is None else f"{p.best_reward:.2f}"
        self.bar.set_postfix_str(f"it {p.iteration} eps {eps} best {best}", refresh=False)
        self.bar.update(p.done - self.bar.n)
