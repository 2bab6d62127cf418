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
    p.add_argument("--curves", type=int, metavar="ID", help="print candidate ID's per-epoch curve")
    p.add_argument(
        "--estimated",
        action="store_true",
        help="rungs: rank candidates stopped at a low rung by their estimated reward too",
    )
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
        "estimate": c.extra.get("estimate"),
    }


def with_estimates(ranking: list[Candidate], candidates: list[Candidate]) -> list[Candidate]:
    """``ranking`` (measured rewards) merged with the candidates stopped at a low rung,
    ranked by their estimated full-budget reward (ties to the earlier id)."""
    stopped = [
        c
        for c in candidates
        if c.reward is None and c.reused_from is None and "estimate" in c.extra
    ]
    return sorted(ranking + stopped, key=lambda c: (-_reward(c), c.id))


def _reward(c: Candidate) -> float:
    """The measured reward, else the estimated one."""
    return c.extra["estimate"]["reward"] if c.reward is None else c.reward


def show(args: argparse.Namespace) -> int:
    store, config = open_run(args.run_dir)
    with store:
        if args.curves is not None:
            return show_curve(store.get(args.curves), store.curve(args.curves), args.json)
        candidates = store.candidates()
        counts, status = store.counts(), store.get_meta("status")
        curves = {c.id: store.curve(c.id) for c in candidates} if args.json else {}
    ranking = rank(candidates)
    if args.estimated:
        ranking = with_estimates(ranking, candidates)
    if args.json:
        out = _show_json(args.run_dir, status, counts, config, candidates, ranking)
        for row in out["candidates"]:
            row["curve"] = curves[row["id"]]
        print(json.dumps(out))
        return 0
    print(f"run {args.run_dir}: {status}, {counts}, budget {config.evaluations}")
    print(f"{'rank':>4} {'id':>6} {'reward':>8} {'acc':>7} {'test':>7}  architecture")
    for position, c in enumerate(ranking[: args.top], start=1):
        test = "-" if c.test_accuracy is None else f"{c.test_accuracy:.2f}"
        acc = "-" if c.accuracy is None else f"{c.accuracy:.2f}"
        reward = ("" if c.reward is not None else "~") + f"{_reward(c):.3f}"
        print(f"{position:>4} {c.id:>6} {reward:>8} {acc:>7} {test:>7}  {c.arch}")
    if args.estimated:
        print("~ estimated from a low rung (stopped there)")
    return 0


def show_curve(c: Candidate, curve: list[dict], as_json: bool) -> int:
    """Print candidate ``c``'s per-epoch validation curve (as JSON with ``as_json``)."""
    if as_json:
        print(json.dumps({"id": c.id, "arch": c.arch, "curve": curve}))
        return 0
    print(f"candidate {c.id}: {c.arch}")
    print(f"{'epoch':>6} {'rung':>4} {'val acc':>8} {'val loss':>9}")
    for p in curve:
        loss = "-" if p["val_loss"] is None else f"{p['val_loss']:.4f}"
        print(f"{p['epoch']:>6} {p['rung']:>4} {p['val_accuracy']:>8.2f} {loss:>9}")
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
