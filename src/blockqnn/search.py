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
candidate stopped at a low rung, the estimate it was told: it is not trained again). A
proposal isomorphic to a candidate still in flight is not trained either: it waits
(``RunStore.add_waiting``) and is answered from that candidate's result once it is known
(trained itself only if that candidate fails). By default duplicates do not consume the
budget (the budget buys trainings; the strategy explores after too many re-proposals in a
row, and the search ends early if even exploring finds only duplicates). With
``count_duplicates`` they count, as the paper counts sampled blocks. A candidate refused by
a constraint before training buys no training either: it is free, up to as many such
refusals as the budget (past that they count, so a run that refuses everything ends).

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
from blockqnn.space import Space, distinct
from blockqnn.store import LOGS_KEY, CandidateState, RungResult, RunStore, StoreError
from blockqnn.strategies import Strategy, make_strategy
from blockqnn.strategies.schedule import iterations_for

logger = logging.getLogger(__name__)

DB_NAME = "run.db"
#: The reward told to the strategy for a candidate over a constraint (percent points).
PENALTY = 0.0
#: Seconds between checkpoints of the run database's write-ahead log during a search.
CHECKPOINT_INTERVAL_S = 10.0
#: The states of a candidate whose evaluation has ended.
_FINAL = (CandidateState.COMPLETE, CandidateState.FAILED)


@dataclass(frozen=True)
class Spending:
    """How a run's candidates stand against its budget: every candidate is in exactly one
    count, and ``done + unfinished`` (:attr:`spent`) never exceeds the budget."""

    budget: int  #: ``--evaluations``
    complete: int  #: trained candidates with a result
    failed: int  #: failed candidates that count (refusals past the free ones included)
    refused: int  #: refused by a constraint before training, free (at most the budget)
    reused: int  #: isomorphic duplicates answered from a stored result
    unfinished: int  #: pending or running, waiting duplicates included
    duplicates_count: bool  #: the paper's accounting: reused duplicates count

    @classmethod
    def of(cls, store: RunStore, config: SearchConfig) -> Spending:
        """The run's spending now."""
        return Tally.of(store).spending(config)

    @property
    def done(self) -> int:
        """Finished candidates that count against the budget."""
        return self.complete + self.failed + (self.reused if self.duplicates_count else 0)

    @property
    def spent(self) -> int:
        """``done`` plus the candidates in flight (a waiting duplicate counts until it is
        answered)."""
        return self.done + self.unfinished

    def text(self) -> str:
        """One readable line: what the budget bought and what came free."""
        parts = [f"{self.done} of a budget of {self.budget} evaluations"]
        parts[0] += f" ({self.complete} complete, {self.failed} failed"
        parts[0] += f", {self.unfinished} unfinished)" if self.unfinished else ")"
        duplicates = f"{self.reused} isomorphic duplicates answered from stored results"
        if self.duplicates_count:
            parts[0] += f", {duplicates} counted in it"
        else:
            parts.append(f"free: {duplicates}")
        if self.refused:
            refused = f"{self.refused} refused by a constraint before training"
            parts.append(refused if len(parts) > 1 else f"free: {refused}")
        return "; ".join(parts) if len(parts) < 3 else f"{parts[0]}; {parts[1]}, {parts[2]}"


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
    space = make_space(config)
    check_budget(config, space)
    warn_pure_exploration(new_strategy(config, space), config)
    store = RunStore.create(Path(run_dir) / DB_NAME, config.to_dict())
    store.set_meta("status", "created")
    return store


def warn_pure_exploration(strategy: Strategy, config: SearchConfig) -> None:
    """Log a warning when an agent whose schedule leaves epsilon 1 never gets there in the
    run's budget (e.g. ``--paper --evaluations 16``: one partial iteration of 64): such a
    run is pure random search."""
    schedule = getattr(strategy, "schedule", None)  # the Q-learning agent's
    if schedule is None or len(set(schedule.epsilons)) < 2:
        return
    iterations = iterations_for(config.evaluations, config.batch)
    if schedule.epsilon(iterations - 1) == 1.0:
        logger.warning(
            "the budget of %d candidates (%d iteration(s) of --batch %d) lies wholly in the "
            "exploration stage (epsilon 1): this search is pure random search; give a larger "
            "--evaluations or a smaller --batch",
            config.evaluations,
            iterations,
            config.batch,
        )


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


def check_budget(config: SearchConfig, space: Space) -> None:
    """ConfigError when the budget buys more trainings than ``space`` has distinct
    architectures (each is trained once unless duplicates count or are trained again)."""
    count = distinct(space)
    if count is None or not config.dedupe or config.count_duplicates:
        return
    if config.evaluations > count:
        raise ConfigError(
            f"invalid evaluations: {config.evaluations:,} exceed the {count:,} distinct "
            f"architectures of the {space.name} space (each is trained once; "
            "--count-duplicates or --no-dedupe allow more)"
        )


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
        strategy.load_state_dict({**saved["strategy"], **saved.get(LOGS_KEY, {})})
    for candidate in store.candidates()[saved["proposals"] :]:
        arch = strategy.ask()
        again = space.format(arch)
        if again != candidate.arch:
            raise StoreError(
                f"{store.path}: cannot resume exactly: candidate #{candidate.id} was "
                f"{candidate.arch}, the restored strategy proposes {again}"
            )
        if candidate.reused_from is not None and candidate.state == CandidateState.COMPLETE:
            tell_duplicate(strategy, config, arch, candidate.told)
    return strategy


def tell_duplicate(
    strategy: Strategy, config: SearchConfig, arch: Hashable, reward: float, late: bool = False
) -> None:
    """Answer a re-proposal with its stored reward (an evaluation only if the run counts
    duplicates); ``late`` for one that waited for its source's result."""
    if config.count_duplicates:
        strategy.tell(arch, reward)
    else:
        strategy.tell(arch, reward, duplicate=True, late=late)


@dataclass
class Tally:
    """The run's counts, kept by the loop as it changes the store (O(1) per proposal and
    result instead of a count over every row); :meth:`spending` is :class:`Spending`."""

    complete: int  #: trained candidates with a result (COMPLETE, not reused)
    failed: int  #: FAILED, refusals included
    refused: int  #: refused by a constraint before training
    reused: int  #: isomorphic duplicates answered from a stored result
    unfinished: int  #: pending or running, waiting duplicates included
    best: float | None  #: best measured reward

    @classmethod
    def of(cls, store: RunStore) -> Tally:
        """The counts of ``store`` as they are now (reads over the whole table)."""
        counts, reused = store.counts(), store.count_reused()
        best = store.top(1)
        return cls(
            complete=counts[CandidateState.COMPLETE.value] - reused,
            failed=counts[CandidateState.FAILED.value],
            refused=store.count_refused(),
            reused=reused,
            unfinished=counts[CandidateState.PENDING.value] + counts[CandidateState.RUNNING.value],
            best=best[0].reward if best else None,
        )

    @property
    def proposals(self) -> int:
        """Candidates stored, in every state."""
        return self.complete + self.failed + self.reused + self.unfinished

    def spending(self, config: SearchConfig) -> Spending:
        """The run's spending against ``config``'s budget."""
        refused = min(self.refused, config.evaluations)
        return Spending(
            budget=config.evaluations,
            complete=self.complete,
            failed=self.failed - refused,
            refused=refused,
            reused=self.reused,
            unfinished=self.unfinished,
            duplicates_count=config.count_duplicates,
        )

    def ended(self, reward: float | None = None, settled: int = 0) -> None:
        """A trained candidate became COMPLETE (``reward``: its measured one, if any), and
        ``settled`` proposals waiting for it became reused."""
        self.unfinished -= 1 + settled
        self.complete += 1
        self.reused += settled
        if reward is not None and (self.best is None or reward > self.best):
            self.best = reward

    def failed_one(self, refused: bool = False) -> None:
        """A candidate became FAILED (``refused``: by a constraint, before training)."""
        self.unfinished -= 1
        self.failed += 1
        self.refused += refused


class Search:
    """Drives one run to its budget. Not thread-safe; one instance per run at a time.

    ``progress`` is called with a :class:`Progress` snapshot about once a second;
    ``on_result(search, cid)`` after each candidate that finished (complete or failed; not a
    reused duplicate, nor a rung after which the candidate trains on). Either may call
    :meth:`stop`.
    """

    def __init__(
        self,
        store: RunStore,
        config: SearchConfig,
        executor: Executor,
        progress: Callable[[Progress], None] | None = None,
        on_result: Callable[[Search, int], None] | None = None,
    ) -> None:
        self.store, self.config, self.executor = store, config, executor
        self.on_result = on_result
        self.stopped = False
        self.space = make_space(config)
        self.strategy = make_run_strategy(config, self.space, store)
        self.progress = progress
        rungs = config.fidelity()
        self.ladder = None if rungs is None else Ladder.from_results(rungs, store.rung_results())
        self._inflight: dict[int, Hashable] = {}
        self._training: dict[Hashable, int] = {}  # canonical key -> the candidate in flight
        self._waiting: dict[int, list[tuple[int, Hashable]]] = {}  # source -> (id, arch)
        self._exhausted = False
        self._started = self._checkpointed = time.monotonic()
        self._tally = Tally.of(store)
        self._done_at_start = 0

    def stop(self) -> None:
        """End the search cleanly: nothing more is proposed, the evaluations in flight run
        to their end and are saved, then :meth:`run` returns (the run's status is
        ``stopped``; resuming it continues to the budget)."""
        self.stopped = True

    def run(self) -> dict[str, int]:
        """Run until every budgeted candidate is complete or failed, or until :meth:`stop`;
        returns the counts.

        Exceptions (Ctrl-C, a lost cluster) propagate after the executor is closed; the
        store already holds everything finished, so ``--resume`` continues the run.
        """
        self.store.set_meta("status", "running")
        self._done_at_start = self._done()
        try:
            for candidate in self.store.requeue_unfinished():
                self._submit(candidate.id, candidate.arch)
            for candidate in self.store.waiting():
                arch = self.space.parse(candidate.arch)
                self._waiting.setdefault(candidate.reused_from, []).append((candidate.id, arch))
            while self._fill() or self._inflight:
                for outcome in self.executor.wait(timeout=1.0):
                    self._collect(outcome)
                    self._finished(outcome.cid)
                self._tend_store()
                self._report()
            self._report()
        except BaseException:
            self.store.set_meta("status", "interrupted")
            raise
        finally:
            self.executor.close()
        self.store.set_meta("status", "stopped" if self.stopped else "finished")
        return self.store.counts()

    def _tend_store(self) -> None:
        """Stop (StoreError) if the run database was deleted under the search; checkpoint
        its write-ahead log every :data:`CHECKPOINT_INTERVAL_S` seconds, so the database
        file alone holds nearly all of the run."""
        self.store.check_in_place()
        if time.monotonic() - self._checkpointed >= CHECKPOINT_INTERVAL_S:
            self.store.checkpoint()
            self._checkpointed = time.monotonic()

    def _finished(self, cid: int) -> None:
        """Call ``on_result`` if candidate ``cid`` has finished."""
        if self.on_result is not None and self.store.get(cid).state in _FINAL:
            self.on_result(self, cid)

    def _done(self) -> int:
        """Candidates finished that count against the budget."""
        return self._tally.spending(self.config).done

    def _fill(self) -> bool:
        """Propose candidates while a slot is free and budget remains; False when the
        budget is fully proposed (or the space holds nothing new)."""
        while len(self._inflight) < self.executor.slots:
            if self.stopped or self._exhausted:
                return False
            if self._tally.spending(self.config).spent >= self.config.evaluations:
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
            self._tally.reused += 1
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
        first = self._training.get(key) if self.config.dedupe else None
        if first is not None:
            cid = self.store.add_waiting(text, key, iteration, epsilon, first)
            self._tally.unfinished += 1
            self._waiting.setdefault(first, []).append((cid, arch))
            logger.debug("candidate #%d waits for #%d (isomorphic, in flight)", cid, first)
            return
        cid = self.store.add_candidate(text, key, iteration, epsilon, None)
        self._tally.unfinished += 1
        self._submit(cid, text)

    def _submit(self, cid: int, text: str) -> None:
        self.store.mark_running(cid)
        self._training[self.space.key(self.space.parse(text))] = cid
        self._send(cid, text)

    def _answer_waiting(self, cid: int, reward: float) -> int:
        """Tell the strategy the result of candidate ``cid`` for each proposal that waited
        for it (the store settles them with ``cid``'s result); returns how many waited."""
        waiting = self._waiting.pop(cid, [])
        for _, arch in waiting:
            tell_duplicate(self.strategy, self.config, arch, reward, late=True)
        return len(waiting)

    def _settled(self, cid: int, arch: Hashable, failed: bool) -> None:
        """Candidate ``cid`` is final: it is no longer in flight; when it ``failed``, the
        first proposal waiting for it is trained instead (the store released it) and the
        others wait for that one."""
        key = self.space.key(arch)
        if self._training.get(key) == cid:
            del self._training[key]
        waiting = self._waiting.pop(cid, [])
        if failed and waiting:
            (first, first_arch), rest = waiting[0], waiting[1:]
            if rest:
                self._waiting[first] = rest
            self._submit(first, self.space.format(first_arch))

    def _send(self, cid: int, text: str) -> None:
        """Hand a RUNNING candidate to the executor (its next rung, with rungs)."""
        self._inflight[cid] = self.space.parse(text)
        if self.ladder is None:
            self.executor.submit(cid, text)
        else:
            self.executor.submit(cid, text, self.ladder.step(cid, self.store.rung_state(cid)))

    def _collect(self, outcome: Outcome) -> None:
        arch = self._inflight.pop(outcome.cid)
        if outcome.worker is not None:
            self.store.record_worker(outcome.cid, outcome.worker)
        if outcome.result is not None:
            self._complete(outcome, arch)
        elif CONSTRAINT_PREFIX in (outcome.error or ""):
            self._reject(outcome.cid, arch, outcome.error, before_training=True)
        elif outcome.lost and self.store.get(outcome.cid).attempts < self.config.max_attempts:
            logger.warning("candidate #%d lost its worker; retrying", outcome.cid)
            self._submit(outcome.cid, self.space.format(arch))
            return
        else:
            logger.warning("candidate #%d failed: %s", outcome.cid, outcome.error)
            self._fail(outcome.cid, outcome.error or "failed")
        if outcome.cid not in self._inflight:  # not promoted to a further rung
            final = self.store.get(outcome.cid).state
            self._settled(outcome.cid, arch, final == CandidateState.FAILED)

    def _complete(self, outcome: Outcome, arch: Hashable) -> None:
        result = outcome.result
        try:
            check_limits(result.named(), self.config.constraints)
            value = reward_of(result, self.config.reward_for(self.store.get(outcome.cid).iteration))
        except ConstraintViolation as exc:
            self._reject(outcome.cid, arch, str(exc))
            return
        except ValueError as exc:
            self._fail(outcome.cid, f"no reward: {exc}")
            return
        if not math.isfinite(value):
            self._fail(outcome.cid, f"non-finite reward {value}")
            return
        if self.ladder is not None:
            self._climb(outcome.cid, arch, result, value)
            return
        self.strategy.tell(arch, value)
        settled = self._answer_waiting(outcome.cid, value)
        self.store.complete(outcome.cid, result, value, self._state())
        self._tally.ended(value, settled)
        logger.info("candidate #%d: accuracy %.2f reward %.3f", outcome.cid, result.accuracy, value)

    def _climb(self, cid: int, arch: Hashable, result: Result, value: float) -> None:
        """Multi-fidelity: after a rung's result, promote the candidate (it continues at
        the next rung), or tell the agent its measured or estimated full-budget reward."""
        rung = self.ladder.next_rung(cid)
        budget = self.ladder.rungs.budgets[rung]
        measured = RungResult(cid, rung, budget, result.accuracy, value)
        fate = self.ladder.decide(rung, value)
        if fate is Fate.PROMOTED:
            self.store.record_rung(cid, rung, budget, result, value)  # and its state
        elif fate is Fate.MEASURED:
            self.strategy.tell(arch, value)
            settled = self._answer_waiting(cid, value)
            self.store.complete(cid, result, value, self._state(), rung=(rung, budget))
            self._tally.ended(value, settled)
        else:
            accuracy, estimate = self.ladder.estimate(measured)
            self.strategy.tell(arch, estimate)
            settled = self._answer_waiting(cid, estimate)
            guess = {"rung": rung, "accuracy": accuracy, "reward": estimate}
            self.store.stop(cid, rung, budget, result, value, guess, self._state())
            self._tally.ended(settled=settled)
        self.ladder.record(measured)
        logger.info(
            "candidate #%d rung %d: accuracy %.2f, %s", cid, rung, result.accuracy, fate.value
        )
        if fate is Fate.PROMOTED:
            self._send(cid, self.space.format(arch))

    def _reject(self, cid: int, arch: Hashable, reason: str, before_training: bool = False) -> None:
        """Fail a candidate over a constraint, telling the strategy :data:`PENALTY` so that
        it learns to avoid such candidates (the constraint-penalised reward). The stored
        error is ``reason`` from :data:`CONSTRAINT_PREFIX` on (without the worker's
        exception class). One refused ``before_training`` is free (see :class:`Spending`)
        while the refusals number at most the budget; a warning says when they stop being
        free."""
        reason = reason[reason.index(CONSTRAINT_PREFIX) :]
        self.strategy.tell(arch, PENALTY)
        self._fail(cid, reason, self._state(), refused=before_training)
        logger.info("candidate #%d: %s", cid, reason)
        capped = before_training and self._tally.refused == self.config.evaluations
        if capped:
            logger.warning(
                "%d candidates were refused by a constraint before training, as many as the "
                "budget: further refusals count against --evaluations (loosen the constraint "
                "if nearly every block breaks it)",
                self.config.evaluations,
            )

    def _fail(
        self, cid: int, error: str, agent_state: dict | None = None, refused: bool = False
    ) -> None:
        self.store.fail(cid, error, agent_state, refused)
        self._tally.failed_one(refused)

    def _state(self) -> dict:
        """What is saved with a result: the strategy (its append-only logs apart, which the
        store saves item by item) and the proposals it has made."""
        state = self.strategy.state_dict()
        logs = {name: state.pop(name) for name in self.strategy.logs}
        return {"strategy": state, "proposals": self._tally.proposals, LOGS_KEY: logs}

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
        return Progress(
            iteration=done // self.config.batch,
            epsilon=self.strategy.epsilon,
            done=done,
            total=self.config.evaluations,
            running=len(self._inflight),
            best_reward=self._tally.best,
            elapsed_s=elapsed,
            eta_s=remaining / rate if rate > 0 else None,
        )
