"""What a search found, as printed at its end: counts, time, the best candidate and the next
commands."""

from __future__ import annotations

import collections
import shlex
from pathlib import Path

from blockqnn.config import SearchConfig
from blockqnn.evaluation import format_metric
from blockqnn.search import Spending, open_run
from blockqnn.store import Candidate, CandidateState, RunStore


def summary(run_dir: str | Path, wall_s: float) -> str:
    """The run's summary after a search session of ``wall_s`` seconds."""
    store, config = open_run(run_dir)
    with store:
        lines = [f"run {run_dir}: {Spending.of(store, config).text()}; in {_duration(wall_s)}"]
        run = shlex.quote(str(run_dir))
        if config.rungs:
            lines.append(rung_summary(store, config.rungs, run))
        best = store.top(1)
    if best:
        top = best[0]
        test = "" if top.test_accuracy is None else f", test {format_metric(top.test_accuracy)}%"
        lines.append(
            f"best: #{top.id} reward {format_metric(top.reward)}, accuracy "
            f"{format_metric(top.accuracy)}%{test}: {top.arch}"
        )
    lines += ["next:", *(f"  {command}" for command in next_commands(run, config, bool(best)))]
    return "\n".join(lines)


def next_commands(run: str, config: SearchConfig, found: bool) -> list[str]:
    """The commands the end of a search suggests for the run ``run`` (shell-quoted), as
    the README lists them; drawing and training need a ``found`` best block, training an
    NSC one."""
    commands = [f"blockqnn show {run}", f"blockqnn report {run}"]
    if found:
        commands.append(f"blockqnn draw {run}:top1 -o {run}/best.svg")
    if found and config.space == "nsc":
        commands.append(f"blockqnn train --block {run}:top1 --epochs 30 --out {run}/final")
    return commands


def rung_summary(store: RunStore, rungs: list[float], run: str) -> str:
    """How far the evaluated candidates went: reached per rung, and stopped below the top."""
    reached = collections.Counter(r.rung for r in store.rung_results())
    budgets = ", ".join(f"{reached[rung]} reached {budget:g}" for rung, budget in enumerate(rungs))
    stopped = sum(
        1
        for c in store.candidates([CandidateState.COMPLETE])
        if c.reused_from is None and c.reward is None
    )
    return (
        f"rungs: {budgets}; {stopped} stopped below the top were told an estimated reward"
        f" (`blockqnn show {run} --estimated` ranks them too)"
    )


def all_failed(run_dir: str | Path) -> Candidate | None:
    """The first failed candidate when the run has failures and no complete candidate."""
    store, _ = open_run(run_dir)
    with store:
        failed = store.candidates([CandidateState.FAILED])
        if failed and not store.counts()[CandidateState.COMPLETE.value]:
            return failed[0]
    return None


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"
