"""``blockqnn show DIR`` (leaderboard) and ``blockqnn export DIR --top K`` (best as JSON)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from blockqnn.search import open_run
from blockqnn.store import Candidate, CandidateState


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


def ranked(candidates: list[Candidate], estimated: bool = False) -> list[Candidate]:
    """Complete candidates by measured reward (best first; with ``estimated`` those
    stopped at a low rung by their estimated reward too), then the others by id."""
    done = [c for c in candidates if _rank_reward(c, estimated) is not None]
    rest = [c for c in candidates if c not in done]
    return sorted(done, key=lambda c: (-_rank_reward(c, estimated), c.id)) + rest


def _rank_reward(c: Candidate, estimated: bool) -> float | None:
    """The reward ``c`` is ranked by: measured, or (``estimated``) else its estimate."""
    if c.state != CandidateState.COMPLETE:
        return None
    if c.reward is None and estimated and "estimate" in c.extra:
        return c.extra["estimate"]["reward"]
    return c.reward


def show(args: argparse.Namespace) -> int:
    store, config = open_run(args.run_dir)
    with store:
        if args.curves is not None:
            return show_curve(store.get(args.curves), store.curve(args.curves), args.json)
        candidates = ranked(store.candidates(), args.estimated)
        counts, status = store.counts(), store.get_meta("status")
        curves = {c.id: store.curve(c.id) for c in candidates} if args.json else {}
    if args.json:
        out = {
            "run_dir": str(args.run_dir),
            "status": status,
            "counts": counts,
            "config": config.to_dict(),
            "candidates": [{**candidate_dict(c), "curve": curves[c.id]} for c in candidates],
        }
        print(json.dumps(out))
        return 0
    print(f"run {args.run_dir}: {status}, {counts}, budget {config.evaluations}")
    print(f"{'rank':>4} {'id':>6} {'reward':>8} {'acc':>7} {'test':>7}  architecture")
    for rank, c in enumerate(candidates[: args.top], start=1):
        reward = _rank_reward(c, args.estimated)
        if reward is None:
            break
        test = "-" if c.test_accuracy is None else f"{c.test_accuracy:.2f}"
        mark, accuracy = ("", c.accuracy) if c.reward is not None else ("~", None)
        acc = "-" if accuracy is None else f"{accuracy:.2f}"
        print(f"{rank:>4} {c.id:>6} {mark + f'{reward:.3f}':>8} {acc:>7} {test:>7}  {c.arch}")
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
