"""``blockqnn show DIR`` (leaderboard) and ``blockqnn export DIR --top K`` (best as JSON)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from blockqnn.config import SearchConfig
from blockqnn.search import open_run
from blockqnn.store import Candidate, rank


def register(subparsers) -> None:
    p = subparsers.add_parser("show", help="print a run's leaderboard")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--top", type=int, default=10, help="rows in the leaderboard (text output)")
    p.add_argument("--json", action="store_true", help="one JSON object with every candidate")
    p.set_defaults(func=show)
    e = subparsers.add_parser("export", help="write a run's best blocks as JSON")
    e.add_argument("run_dir", type=Path)
    e.add_argument("--top", type=int, default=1)
    e.add_argument("-o", "--output", default="-", help="file to write (default: stdout)")
    e.set_defaults(func=export)


def candidate_dict(c: Candidate) -> dict:
    """A candidate as plain JSON data (``codes`` and ``arch`` both hold its text)."""
    return {
        "id": c.id,
        "codes": c.arch,
        "arch": c.arch,
        "key": c.key,
        "state": c.state.value,
        "iteration": c.iteration,
        "epsilon": c.epsilon,
        "accuracy": c.accuracy,
        "test_accuracy": c.test_accuracy,
        "reward": c.reward,
        "flops": c.flops,
        "params": c.params,
        "density": c.density,
        "cost_s": c.cost_s,
        "attempts": c.attempts,
        "reused_from": c.reused_from,
        "error": c.error,
    }


def show(args: argparse.Namespace) -> int:
    store, config = open_run(args.run_dir)
    with store:
        candidates = store.candidates()
        counts, status = store.counts(), store.get_meta("status")
    ranking = rank(candidates)
    if args.json:
        print(json.dumps(_show_json(args.run_dir, status, counts, config, candidates, ranking)))
        return 0
    print(f"run {args.run_dir}: {status}, {counts}, budget {config.evaluations}")
    print(f"{'rank':>4} {'id':>6} {'reward':>8} {'acc':>7} {'test':>7}  architecture")
    for position, c in enumerate(ranking[: args.top], start=1):
        test = "-" if c.test_accuracy is None else f"{c.test_accuracy:.2f}"
        print(f"{position:>4} {c.id:>6} {c.reward:>8.3f} {c.accuracy:>7.2f} {test:>7}  {c.arch}")
    return 0


def _show_json(
    run_dir: Path,
    status: object,
    counts: dict[str, int],
    config: SearchConfig,
    candidates: list[Candidate],
    ranking: list[Candidate],
) -> dict:
    """Every candidate: the ranking first (``rank`` 1, 2, ...), then the rest by id
    (``rank`` null: duplicates, failed and unfinished candidates)."""
    ranks = {c.id: position for position, c in enumerate(ranking, start=1)}
    ordered = ranking + [c for c in candidates if c.id not in ranks]
    return {
        "run_dir": str(run_dir),
        "status": status,
        "counts": counts,
        "config": config.to_dict(),
        "candidates": [{"rank": ranks.get(c.id), **candidate_dict(c)} for c in ordered],
    }


def export(args: argparse.Namespace) -> int:
    store, config = open_run(args.run_dir)
    with store:
        best = store.top(args.top)
    rows = [{"rank": i, **candidate_dict(c)} for i, c in enumerate(best, start=1)]
    text = json.dumps({"space": config.space, "blocks": rows}, indent=2)
    if args.output == "-":
        sys.stdout.write(text + "\n")
    else:
        Path(args.output).write_text(text + "\n")
    return 0
