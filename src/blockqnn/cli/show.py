"""``blockqnn show DIR``: a run's leaderboard, with a column for every metric it has."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from blockqnn.cli._errors import UsageError
from blockqnn.config import SearchConfig
from blockqnn.evaluation import format_metric, metric_label
from blockqnn.pareto import Objective, front, gains, objectives, steered_reward_text
from blockqnn.runlock import shown_status
from blockqnn.search import Spending, open_run
from blockqnn.store import Candidate, CandidateState, rank


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
    p.add_argument(
        "--pareto",
        action="store_true",
        help="list the Pareto front of the run's objectives (--json always has it)",
    )
    p.add_argument(
        "--objectives",
        type=lambda text: text.split(","),
        help="objectives of --pareto (default: the run's --objectives)",
    )
    p.set_defaults(func=show)


def candidate_dict(c: Candidate) -> dict:
    """A candidate as plain JSON data: ``codes`` and ``arch`` both hold its text; ``metrics``
    holds every metric it has by name, and the ranking ones (``reward``, ``accuracy``,
    ``test_accuracy``) are repeated at the top level (None when missing)."""
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
        "metrics": c.named(),
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
    return sorted(ranking + stopped, key=lambda c: (-c.told, c.id))


def show(args: argparse.Namespace) -> int:
    store, config = open_run(args.run_dir)
    with store:
        if args.curves is not None:
            return show_curve(store.get(args.curves), store.curve(args.curves), args.json)
        counts, status = store.counts(), shown_status(args.run_dir, store.get_meta("status"))
        spending = Spending.of(store, config)
        names = store.metric_names()
        if _leaderboard_only(args):  # reads the leaderboard's rows only
            print(header(args.run_dir, status, spending, config))
            print(leaderboard(store.top(args.top), names))
            return 0
        candidates = store.candidates()
        curves = {c.id: store.curve(c.id) for c in candidates} if args.json else {}
    ranking = rank(candidates, objectives=config.objectives)
    if args.estimated:
        ranking = with_estimates(ranking, candidates)
    objs = _objectives(args, config.objectives)
    front = pareto_front(candidates, objs) if objs else None
    if args.json:
        out = _show_json(args.run_dir, status, counts, config, candidates, ranking)
        for row in out["candidates"]:
            row["curve"] = curves[row["id"]]
        if front is not None:
            out["pareto"] = {"objectives": [o.metric for o in objs], "ids": [c.id for c in front]}
        print(json.dumps(out))
        return 0
    print(header(args.run_dir, status, spending, config))
    if args.estimated:
        print(estimated_board(ranking[: args.top]))
        return 0
    print(f"Pareto front of {', '.join(o.metric for o in objs)}: {len(front)} candidate(s)")
    print(leaderboard(front, names))
    return 0


def header(run_dir: Path, status: object, spending: Spending, config: SearchConfig) -> str:
    """The lines above a text board: the run's status and spending (and its steered reward)."""
    lines = [f"run {run_dir}: {status}; {spending.text()}"]
    if config.objectives:
        steered = steered_reward_text(objectives(config.objectives), config.steer_weight)
        lines.append(f"reward: {steered}")
    return "\n".join(lines)


def _leaderboard_only(args: argparse.Namespace) -> bool:
    """Whether ``show`` prints just the leaderboard of measured rewards."""
    return not (args.json or args.estimated or args.pareto)


def estimated_board(candidates: list[Candidate]) -> str:
    """A text table ranking measured and (``~``) estimated rewards."""
    lines = [f"{'rank':>4} {'id':>6} {'reward':>8} {'acc':>7} {'test':>7}  architecture"]
    for position, c in enumerate(candidates, start=1):
        test, acc = format_metric(c.test_accuracy), format_metric(c.accuracy)
        reward = ("" if c.reward is not None else "~") + format_metric(c.told)
        lines.append(f"{position:>4} {c.id:>6} {reward:>8} {acc:>7} {test:>7}  {c.arch}")
    lines.append("~ estimated from a low rung (stopped there)")
    return "\n".join(lines)


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


def _objectives(args: argparse.Namespace, configured: list[str]) -> tuple[Objective, ...]:
    """The objectives given or the run's (none for a single-objective run); ValueError when
    ``--pareto`` has none."""
    names = args.objectives or configured
    if args.pareto and not names:
        raise UsageError("--pareto needs --objectives (the run was not multi-objective)")
    return objectives(names) if names else ()


def pareto_front(candidates: list[Candidate], objs: tuple[Objective, ...]) -> list[Candidate]:
    """The complete, non-reused candidates on the Pareto front, by the first objective."""
    trained = [
        c for c in candidates if c.state == CandidateState.COMPLETE and c.reused_from is None
    ]
    found = front(trained, lambda c: gains(c.named(), objs))
    return sorted(found, key=lambda c: (-objs[0].gain(c.named()[objs[0].metric]), c.id))


def leaderboard(candidates: list[Candidate], names: list[str]) -> str:
    """A text table of ``candidates`` (COMPLETE ones) with a column per metric name."""
    labels = [metric_label(name) for name in names]
    widths = [max(8, len(label)) for label in labels]
    cells = [f"{label:>{w}}" for label, w in zip(labels, widths, strict=True)]
    lines = [f"{'rank':>4} {'id':>6} {' '.join(cells)}  architecture"]
    for position, c in enumerate(candidates, start=1):
        values = [format_metric(c.metric(n), n) for n in names]
        cells = [f"{v:>{w}}" for v, w in zip(values, widths, strict=True)]
        lines.append(f"{position:>4} {c.id:>6} {' '.join(cells)}  {c.arch}")
    return "\n".join(lines)
