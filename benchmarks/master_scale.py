"""The master's cost as a run grows: an NB201 table search at the paper's size.

Runs ``blockqnn search --space nb201 --table TABLE --reward-column valid-accuracy
--strategy qlearning --seed 0`` in this process (the library calls the command makes:
``create_run``, ``Search`` with a progress callback, inline table look-ups) at ``--small``
(1,000) and ``--large`` (11,392, the paper's count) evaluations. Reported:

- per run: wall and CPU seconds of ``Search.run``, rows stored (evaluations plus the
  re-proposals answered from stored results) and the ratios large / small;
- the master's time per proposal (``Search._propose``: ask, key look-up, store write,
  duplicate answer) by the number of rows already stored, from the large run: the median
  over the proposals made with ``--near`` (1,000) rows and with ``--far`` (100,000) rows
  stored (each a window of ``--window`` proposals), and their ratio;
- ``blockqnn show RUN`` on the large run's store (a process, wall seconds).

CPU times are the robust figures on a shared machine (wall times include other load).
Prints a table, then one JSON line.

    nice python benchmarks/master_scale.py --table ../shared/data/nb201/cifar10_valid.csv
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from blockqnn.config import SearchConfig
from blockqnn.execution import InlineExecutor
from blockqnn.search import Search, create_run
from blockqnn.tabular import TabularEvaluator


class TimedSearch(Search):
    """A search that records the time of each proposal with the rows stored before it
    (``perf_counter``: a clock read that costs nothing, unlike the process CPU clock)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.proposals: list[tuple[int, float]] = []  #: (rows stored, CPU seconds)

    def _propose(self) -> None:
        rows, start = self._tally.proposals, time.perf_counter()
        super()._propose()
        self.proposals.append((rows, time.perf_counter() - start))


def search(table: str, evaluations: int, run_dir: Path) -> tuple[dict[str, Any], TimedSearch]:
    """One NB201 table search as the command runs it; its timings and the search."""
    evaluator = {"kind": "tabular", "table": table, "reward_column": "valid-accuracy"}
    config = SearchConfig(space="nb201", evaluations=evaluations, seed=0, evaluator=evaluator)
    options = {k: v for k, v in evaluator.items() if k != "kind"}
    with create_run(run_dir, config) as store:
        runner = TimedSearch(
            store, config, InlineExecutor(TabularEvaluator(**options)), progress=lambda p: None
        )
        wall, cpu = time.perf_counter(), time.process_time()
        runner.run()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        rows = sum(store.counts().values())
    return {"evaluations": evaluations, "rows": rows, "wall_s": wall, "cpu_s": cpu}, runner


def per_proposal(proposals: list[tuple[int, float]], rows: int, window: int) -> float | None:
    """Median ms of the ``window`` proposals made from ``rows`` stored rows on (None when
    the run never had that many rows; a median, so that the moments another process had
    the CPU do not count)."""
    times = [dt for n, dt in proposals if rows <= n < rows + window]
    return 1000 * statistics.median(times) if len(times) == window else None


def timed_command(*args: str) -> float:
    """Wall seconds of one ``blockqnn`` command in a fresh process (output discarded)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "blockqnn", *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", required=True)
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=11392)
    parser.add_argument("--near", type=int, default=1000)
    parser.add_argument("--far", type=int, default=100_000)
    parser.add_argument("--window", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        small, _ = search(args.table, args.small, Path(tmp) / "small")
        large, runner = search(args.table, args.large, Path(tmp) / "large")
        near = per_proposal(runner.proposals, args.near, args.window)
        far = per_proposal(runner.proposals, args.far, args.window)
        run = str(Path(tmp) / "large")
        views = {"show_s": timed_command("show", run)}
    for name, value in (("small", small), ("large", large)):
        print(
            f"{name:>5}: {value['evaluations']:>6} evaluations, {value['rows']:>7} rows, "
            f"{value['wall_s']:7.1f} s wall, {value['cpu_s']:7.1f} s CPU"
        )
    ratio = {k: large[k] / small[k] for k in ("wall_s", "cpu_s", "rows")}
    print(
        f"large / small: wall {ratio['wall_s']:.1f}x, CPU {ratio['cpu_s']:.1f}x "
        f"(rows {ratio['rows']:.1f}x)"
    )
    far_ratio = None if near is None or far is None else far / near
    print(
        f"median per proposal: {near} ms at {args.near:,} rows, {far} ms at {args.far:,} rows"
        f" (ratio {far_ratio})"
    )
    print(" ".join(f"{k} {v:.2f}" for k, v in views.items()))
    report = {
        "small": small,
        "large": large,
        "ratio": ratio,
        "per_proposal_ms": {"near": near, "far": far, "ratio": far_ratio},
        "views": views,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
