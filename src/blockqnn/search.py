"""The search loop: ask -> submit -> collect -> tell -> persist.

Only this module knows the strategy, the run store and the executor together. The loop is
asynchronous as docs/design.md section 8 describes: whenever an executor slot is free and
budget remains, the strategy proposes a new candidate; results are told to the strategy
as they arrive. Every change of the strategy's state is saved in the same transaction as
the candidate row it concerns, so a run killed at any instant resumes exactly: completed
evaluations are kept, candidates that were in flight are evaluated again, and the run ends
with exactly ``evaluations`` trained candidates.

Duplicates: a proposal isomorphic to a completed candidate is not trained; it is stored
as a reused candidate and told to the strategy at once with the stored reward (for a
candidate stopped at a low rung, the estimate it was told: it is not trained again). By
default it does not consume the budget (the budget buys trainings; the strategy explores
after too many re-proposals in a row, and the search ends early if even exploring finds
only duplicates). With ``count_duplicates`` it counts, as the paper counts sampled blocks.

Persistence: the strategy's state is saved with every evaluation result it learns from
(one transaction with the candidate's row), together with the number of proposals made
so far. Proposals and the duplicate answers given at once change the strategy in a way
that is reproducible from the stored rows, so they are not saved each time: on resume,
the proposals made after the last save are asked again (checked against the stored
architectures) and the reused ones among them are told again.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path

from blockqnn.config import ConfigError, SearchConfig, make_space
from blockqnn.evaluation import CONSTRAINT_PREFIX, ConstraintViolation, Result, check_limits
from blockqnn.execution.base import Executor, Outcome
from blockqnn.fidelity import Fate, Ladder
from blockqnn.reward import reward_of
from blockqnn.space import Space
from blockqnn.store import CandidateState, RungResult, RunStore, StoreError
from blockqnn.strategies import Strategy, make_strategy

logger = logging.getLogger(__name__)

DB_NAME = "run.db"
#: The reward told to the strategy for a candidate over a constraint (percent points).
PENALTY = 0.0
#: Seconds between checkpoints of the run database's write-ahead log during a search.
CHECKPOINT_INTERVAL_S = 10.0


@dataclass(frozen=True)
class Progress:
    """A snapshot of a running search, for progress bars and logs."""

    iteration: int  #: completed iterations (``done // batch``)
    epsilon: float | None  #: exploration rate of the next proposal
    done: int  #: candidates finished (complete, reused or failed)
    total: int  #: the budget
    running: int  #: evaluations in flight
    best_reward: float | None  #: best reward so far
    elapsed_s: float  #: wall time of this session of the run
    eta_s: float | None  #: estimated time to finish, from this session's rate


def create_run(run_dir: str | Path, config: SearchConfig) -> RunStore:
    """Create the run directory's database holding ``config`` (refuses an existing run).

    The configuration is checked first (space, strategy and its options), so a bad option
    never leaves a run directory behind.
    """
    new_strategy(config, make_space(config))
    store = RunStore.create(Path(run_dir) / DB_NAME, config.to_dict())
    store.set_meta("status", "created")
    return store


def open_run(run_dir: str | Path) -> tuple[RunStore, SearchConfig]:
    """Open an existing run and its stored configuration (StoreError / ConfigError; a bad
    stored configuration's error names the database and the field)."""
    path = Path(run_dir) / DB_NAME
    store = RunStore.open(path)
    try:
        return store, SearchConfig.from_dict(store.config)
    except ConfigError as exc:
        store.close()
        raise ConfigError(f"{path}: stored configuration: {exc}") from exc


def new_strategy(config: SearchConfig, space: Space) -> Strategy:
    """A fresh strategy as ``config`` describes it (ConfigError for bad options)."""
    try:
        return make_strategy(
            config.strategy,
            space,
            seed=config.seed,
            budget=config.evaluations,
            batch=config.batch,
            **config.strategy_options,
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"strategy {config.strategy!r}: {exc}") from None


def make_run_strategy(config: SearchConfig, space: Space, store: RunStore) -> Strategy:
    """The run's strategy as it was after its last proposal: restored from the saved state,
    then the proposals made since that save asked again (StoreError if one differs)."""
    strategy = new_strategy(config, space)
    saved = store.agent_state() or {"strategy": None, "proposals": 0}
    if saved["strategy"] is not None:
        strategy.load_state_dict(saved["strategy"])
    for candidate in store.candidates()[saved["proposals"] :]:
        arch = strategy.ask()
        again = space.format(arch)
        if again != candidate.arch:
            raise StoreError(
                f"{store.path}: cannot resume exactly: candidate #{candidate.id} was "
                f"{candidate.arch}, the restored strategy proposes {again}"
            )
        if candidate.reused_from is not None:
            tell_duplicate(strategy, config, arch, candidate.told)
    return strategy


def tell_duplicate(strategy: Strategy, config: SearchConfig, arch: Hashable, reward: float) -> None:
    """Answer a re-proposal with its stored reward (an evaluation only if the run counts
    duplicates)."""
    strategy.tell(arch, reward, duplicate=not config.count_duplicates)


class Search:
    """Drives one run to its budget. Not thread-safe; one instance per run at a time."""

    def __init__(
        self,
        store: RunStore,
        config: SearchConfig,
        executor: Executor,
        progress: Callable[[Progress], None] | None = None,
    ) -> None:
        self.store, self.config, self.executor = store, config, executor
        self.space = make_space(config)
        self.strategy = make_run_strategy(config, self.space, store)
        self.progress = progress
        rungs = config.fidelity()
        self.ladder = None if rungs is None else Ladder.from_results(rungs, store.rung_results())
        self._inflight: dict[int, Hashable] = {}
        self._exhausted = False
        self._started = self._checkpointed = time.monotonic()
        self._done_at_start = 0

    def run(self) -> dict[str, int]:
        """Run until every budgeted candidate is complete or failed; returns the counts.

        Exceptions (Ctrl-C, a lost cluster) propagate after the executor is closed; the
        store already holds everything finished, so ``--resume`` continues the run.
        """
        self.store.set_meta("status", "running")
        self._done_at_start = self._done()
        try:
            for candidate in self.store.requeue_unfinished():
                self._submit(candidate.id, candidate.arch)
            while self._fill() or self._inflight:
                for outcome in self.executor.wait(timeout=1.0):
                    self._collect(outcome)
                self._tend_store()
                self._report()
            self._report()
        except BaseException:
            self.store.set_meta("status", "interrupted")
            raise
        finally:
            self.executor.close()
        self.store.set_meta("status", "finished")
        return self.store.counts()

    def _tend_store(self) -> None:
        """Stop (StoreError) if the run database was deleted under the search; checkpoint
        its write-ahead log every :data:`CHECKPOINT_INTERVAL_S` seconds, so the database
        file alone holds nearly all of the run."""
        self.store.check_in_place()
        if time.monotonic() - self._checkpointed >= CHECKPOINT_INTERVAL_S:
            self.store.checkpoint()
            self._checkpointed = time.monotonic()

    def _free(self) -> int:
        """Reused candidates that do not count against the budget."""
        return 0 if self.config.count_duplicates else self.store.count_reused()

    def _done(self) -> int:
        """Candidates finished that count against the budget."""
        counts = self.store.counts()
        finished = counts[CandidateState.COMPLETE.value] + counts[CandidateState.FAILED.value]
        return finished - self._free()

    def _fill(self) -> bool:
        """Propose candidates while a slot is free and budget remains; False when the
        budget is fully proposed (or the space holds nothing new)."""
        while len(self._inflight) < self.executor.slots:
            spent = sum(self.store.counts().values()) - self._free()
            if spent >= self.config.evaluations or self._exhausted:
                return False
            self._propose()
        return True

    def _propose(self) -> None:
        arch = self.strategy.ask()
        text, key = self.space.format(arch), self.space.key(arch)
        iteration, epsilon = self.strategy.iteration, self.strategy.epsilon
        source = self.store.find_by_key(key) if self.config.dedupe else None
        if source is not None and source.told is not None:
            tell_duplicate(self.strategy, self.config, arch, source.told)
            self.store.add_reused(text, key, iteration, epsilon, source.id, source.reward, None)
            logger.debug("candidate reuses #%d (isomorphic): reward %.3f", source.id, source.told)
            self._exhausted = self.strategy.repeats >= 2 * self.strategy.max_repeats
            if self._exhausted:
                logger.warning(
                    "%d proposals in a row were duplicates, %d of them random: the space "
                    "seems exhausted; ending the search early",
                    self.strategy.repeats,
                    self.strategy.max_repeats,
                )
            return
        cid = self.store.add_candidate(text, key, iteration, epsilon, None)
        self._submit(cid, text)

    def _submit(self, cid: int, text: str) -> None:
        self.store.mark_running(cid)
        self._send(cid, text)

    def _send(self, cid: int, text: str) -> None:
        """Hand a RUNNING candidate to the executor (its next rung, with rungs)."""
        self._inflight[cid] = self.space.parse(text)
        if self.ladder is None:
            self.executor.submit(cid, text)
        else:
            self.executor.submit(cid, text, self.ladder.step(cid, str(self._weights(cid))))

    def _collect(self, outcome: Outcome) -> None:
        arch = self._inflight.pop(outcome.cid)
        if outcome.result is not None:
            self._complete(outcome, arch)
        elif CONSTRAINT_PREFIX in (outcome.error or ""):
            self._reject(outcome.cid, arch, outcome.error)
        elif outcome.lost and self.store.get(outcome.cid).attempts < self.config.max_attempts:
            logger.warning("candidate #%d lost its worker; retrying", outcome.cid)
            self._submit(outcome.cid, self.space.format(arch))
        else:
            logger.warning("candidate #%d failed: %s", outcome.cid, outcome.error)
            self.store.fail(outcome.cid, outcome.error or "failed")

    def _complete(self, outcome: Outcome, arch: Hashable) -> None:
        result = outcome.result
        try:
            check_limits(result.named(), self.config.constraints)
            value = reward_of(result, self.config.reward_for(self.store.get(outcome.cid).iteration))
        except ConstraintViolation as exc:
            self._reject(outcome.cid, arch, str(exc))
            return
        except ValueError as exc:
            self.store.fail(outcome.cid, f"no reward: {exc}")
            return
        if not math.isfinite(value):
            self.store.fail(outcome.cid, f"non-finite reward {value}")
            return
        if self.ladder is not None:
            self._climb(outcome.cid, arch, result, value)
            return
        self.strategy.tell(arch, value)
        self.store.complete(outcome.cid, result, value, self._state())
        logger.info("candidate #%d: accuracy %.2f reward %.3f", outcome.cid, result.accuracy, value)

    def _climb(self, cid: int, arch: Hashable, result: Result, value: float) -> None:
        """Multi-fidelity: after a rung's result, promote the candidate (it continues at
        the next rung), or tell the agent its measured or estimated full-budget reward."""
        rung = self.ladder.next_rung(cid)
        budget = self.ladder.rungs.budgets[rung]
        measured = RungResult(cid, rung, budget, result.accuracy, value)
        fate = self.ladder.decide(rung, value)
        if fate is Fate.PROMOTED:
            self.store.record_rung(cid, rung, budget, result, value)
        elif fate is Fate.MEASURED:
            self.strategy.tell(arch, value)
            self.store.complete(cid, result, value, self._state(), rung=(rung, budget))
        else:
            accuracy, estimate = self.ladder.estimate(measured)
            self.strategy.tell(arch, estimate)
            guess = {"rung": rung, "accuracy": accuracy, "reward": estimate}
            self.store.stop(cid, rung, budget, result, value, guess, self._state())
        self.ladder.record(measured)
        logger.info(
            "candidate #%d rung %d: accuracy %.2f, %s", cid, rung, result.accuracy, fate.value
        )
        if fate is Fate.PROMOTED:
            self._send(cid, self.space.format(arch))
        else:
            self._weights(cid).unlink(missing_ok=True)

    def _weights(self, cid: int) -> Path:
        """Where the evaluator keeps candidate ``cid``'s weights between rungs."""
        return self.store.path.parent / "weights" / f"{cid}.pt"

    def _reject(self, cid: int, arch: Hashable, reason: str) -> None:
        """Fail a candidate over a constraint, telling the strategy :data:`PENALTY` so that
        it learns to avoid such candidates (the constraint-penalised reward). The stored
        error is ``reason`` from :data:`CONSTRAINT_PREFIX` on (without the worker's
        exception class)."""
        reason = reason[reason.index(CONSTRAINT_PREFIX) :]
        self.strategy.tell(arch, PENALTY)
        self.store.fail(cid, reason, self._state())
        logger.info("candidate #%d: %s", cid, reason)

    def _state(self) -> dict:
        """What is saved with a result: the strategy and the proposals it has made."""
        proposals = sum(self.store.counts().values())
        return {"strategy": self.strategy.state_dict(), "proposals": proposals}

    def _report(self) -> None:
        if self.progress is None:
            return
        self.progress(self.snapshot())

    def snapshot(self) -> Progress:
        """The run's progress now."""
        done = self._done()
        elapsed = time.monotonic() - self._started
        rate = (done - self._done_at_start) / elapsed if elapsed > 0 else 0.0
        remaining = self.config.evaluations - done
        best = self.store.top(1)
        return Progress(
            iteration=done // self.config.batch,
            epsilon=self.strategy.epsilon,
            done=done,
            total=self.config.evaluations,
            running=len(self._inflight),
            best_reward=best[0].reward if best else None,
            elapsed_s=elapsed,
            eta_s=remaining / rate if rate > 0 else None,
        )
