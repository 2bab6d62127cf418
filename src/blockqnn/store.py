"""The run store: one SQLite database per search run, safe against a crash at any instant.

A run directory holds ``run.db``. It records the resolved configuration, every candidate
the agent proposed (its architecture, state, metrics and reward) and the agent's state.
Each change to a candidate and the agent state that goes with it are written in **one**
transaction, so after a crash (even ``SIGKILL``) the agent state always matches the
candidate table: a result is never lost, never counted twice.

Candidate lifecycle (the master, the single writer, drives it)::

    add_candidate -> PENDING -> mark_running -> RUNNING -> complete -> COMPLETE
                                                        \\-> fail     -> FAILED
    add_reused -> COMPLETE (an isomorphic duplicate reusing a stored result)
    add_waiting -> PENDING, reused_from set (isomorphic to a candidate in flight): settled
        -> COMPLETE with its source's result when the source completes (or stops), or
        released (reused_from cleared, to be trained) when the source fails
    requeue_unfinished: RUNNING -> PENDING (on resume; each is evaluated again)

With multi-fidelity evaluation (:mod:`blockqnn.fidelity`) a RUNNING candidate passes rungs:
``record_rung`` stores a rung's result of a promoted candidate (it stays RUNNING, to be
continued); ``complete`` at the top rung stores the measured full-budget result; ``stop``
makes a candidate stopped below the top COMPLETE with no measured ``accuracy``/``reward``
(only an estimate, in ``extra["estimate"]``). The ``rungs`` table keeps what each rung
measured and the ``curves`` table every candidate's per-epoch validation curve.

The database uses WAL journaling with ``synchronous=NORMAL``: a process crash loses no
committed transaction; a power loss may roll back the last few, but never corrupts the
file or splits a transaction.

This module is pure Python (stdlib ``sqlite3``): it never imports torch.
"""

from __future__ import annotations

import json
import logging
import numbers
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from enum import Enum
from pathlib import Path
from typing import Any

from blockqnn import pareto
from blockqnn.errors import UserError
from blockqnn.evaluation import METRIC_NAME, Result

logger = logging.getLogger(__name__)

#: File name of the database inside a run directory.
DB_FILENAME = "run.db"
#: ``PRAGMA application_id`` of every run database (ASCII "BQNN").
APPLICATION_ID = 0x42514E4E
#: Value of the ``app`` meta entry.
APP_NAME = "blockqnn-run"
#: ``PRAGMA user_version``: the schema this module writes and reads.
SCHEMA_VERSION = 2
#: Seconds a write waits for another connection's lock before failing.
BUSY_TIMEOUT_S = 30.0
#: Reused candidates buffered before they are written (they are written sooner with any
#: other change, read or close).
REUSED_BATCH = 256
#: The agent state's key of its append-only logs (see :meth:`RunStore.add_candidate`).
LOGS_KEY = "logs"

_SQLITE_MAGIC = b"SQLite format 3\x00"
_RESERVED_META = frozenset({"app", "schema_version", "config", "created"})
#: Metrics kept in their own column; every other one is in the ``metrics`` JSON column.
_COLUMN_METRICS = frozenset({"reward", "accuracy"})

#: Per-epoch curves, per-rung results, the agent state's logs and the index of original
#: results by key; created on open too in databases made before they existed (an
#: additive change: the schema version stays).
_RUNG_TABLES = (
    """CREATE TABLE IF NOT EXISTS curves (
        cid INTEGER NOT NULL REFERENCES candidates (id),
        epoch INTEGER NOT NULL,
        rung INTEGER NOT NULL,
        val_accuracy REAL,
        val_loss REAL,
        PRIMARY KEY (cid, epoch)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS rung_states (
        cid INTEGER PRIMARY KEY REFERENCES candidates (id),
        state BLOB NOT NULL  -- what the candidate's next rung continues from
    )""",
    """CREATE TABLE IF NOT EXISTS agent_log (
        name TEXT NOT NULL,
        idx INTEGER NOT NULL,
        value TEXT NOT NULL,  -- JSON: one item of the agent state's log ``name``
        PRIMARY KEY (name, idx)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS candidates_original_by_key ON candidates (key, id)"
    " WHERE reused_from IS NULL AND state = 'complete'",
    "CREATE INDEX IF NOT EXISTS candidates_waiting ON candidates (reused_from)"
    " WHERE state = 'pending'",
    """CREATE TABLE IF NOT EXISTS rungs (
        cid INTEGER NOT NULL REFERENCES candidates (id),
        rung INTEGER NOT NULL,
        budget REAL NOT NULL,
        accuracy REAL NOT NULL,
        reward REAL NOT NULL,  -- measured at this rung
        cost_s REAL NOT NULL,
        finished REAL NOT NULL,
        PRIMARY KEY (cid, rung)
    ) WITHOUT ROWID""",
)

_SCHEMA = (
    """CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL  -- JSON
    ) WITHOUT ROWID""",
    """CREATE TABLE candidates (
        id INTEGER PRIMARY KEY,
        arch TEXT NOT NULL,
        key TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'complete', 'failed')),
        iteration INTEGER NOT NULL,
        epsilon REAL,
        accuracy REAL,
        metrics TEXT NOT NULL DEFAULT '{}',  -- JSON: every other metric, by name
        reward REAL,
        cost_s REAL,
        created REAL NOT NULL,
        started REAL,
        finished REAL,
        attempts INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        reused_from INTEGER REFERENCES candidates (id),
        worker TEXT,
        extra TEXT NOT NULL DEFAULT '{}'  -- JSON
    )""",
    "CREATE INDEX candidates_by_state ON candidates (state)",
    "CREATE INDEX candidates_by_key ON candidates (key)",
    """CREATE TABLE agent (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        state TEXT NOT NULL,  -- JSON
        updated REAL NOT NULL
    )""",
    *_RUNG_TABLES,
    f"PRAGMA application_id = {APPLICATION_ID}",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)


class StoreError(RuntimeError, UserError):
    """A run database that is missing, foreign, corrupt or too new, or a refused change."""


class CandidateState(str, Enum):
    """Where a candidate is in its lifecycle. COMPLETE and FAILED are final."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"


@dataclass(frozen=True)
class Candidate:
    """One proposed architecture and what is known about it (an immutable snapshot)."""

    id: int  #: unique, increasing in proposal order
    arch: str  #: the architecture in its space's text form
    key: str  #: canonical (isomorphism) key
    state: CandidateState
    iteration: int  #: the agent's iteration when it was proposed
    epsilon: float | None  #: exploration rate when it was proposed
    accuracy: float | None  #: validation accuracy, percent
    metrics: dict[str, float]  #: every other metric of its result, by name (Result.metrics)
    reward: float | None  #: percent points
    cost_s: float | None  #: seconds the evaluation took (0 for a reused result)
    created: float  #: unix time of the proposal
    started: float | None  #: unix time of the last start
    finished: float | None  #: unix time of the result or failure
    attempts: int  #: how many times it was started
    error: str | None  #: the failure message
    reused_from: int | None  #: id of the candidate whose result this one reuses
    worker: str | None  #: who ran the last attempt
    extra: dict[str, Any]  #: evaluator-specific details

    @property
    def test_accuracy(self) -> float | None:
        """Held-out test accuracy in percent, when the evaluator gave one."""
        return self.metric("test_accuracy")

    @property
    def told(self) -> float | None:
        """The reward the agent was told: the measured one, else (a candidate stopped at
        a low rung, or a duplicate of one) the estimated full-budget reward; None when
        neither is known."""
        if self.reward is not None:
            return self.reward
        estimate = self.extra.get("estimate")
        return None if estimate is None else estimate["reward"]

    def metric(self, name: str) -> float | None:
        """The value of metric ``name`` (``reward`` and ``accuracy`` included), or None."""
        if name in _COLUMN_METRICS:
            return getattr(self, name)
        return self.metrics.get(name)

    def named(self) -> dict[str, float]:
        """Every metric it has, by name: ``reward``, ``accuracy``, then the result's metrics."""
        columns = {"reward": self.reward, "accuracy": self.accuracy}
        return {**{k: v for k, v in columns.items() if v is not None}, **self.metrics}


_FIELDS = tuple(f.name for f in fields(Candidate))
_COLUMNS = ", ".join(_FIELDS)


@dataclass(frozen=True)
class _AgentRows:
    """An agent state ready to write: its row's text and its logs' new items."""

    text: str  #: the state's JSON, each log replaced by its length
    items: list[tuple[str, int, str]]  #: (log name, index, item JSON) not yet written
    counts: dict[str, int]  #: each log's length once written


@dataclass(frozen=True)
class RungResult:
    """What one candidate measured at one rung (a row of the ``rungs`` table)."""

    cid: int
    rung: int  #: 0 for the smallest budget
    budget: float  #: epochs, or the table rung's cost
    accuracy: float  #: validation accuracy at this budget, percent
    reward: float  #: the reward measured at this budget


def rank(
    candidates: Iterable[Candidate],
    by: str | None = None,
    objectives: Sequence[str] = (),
) -> list[Candidate]:
    """The ranking of a run: best first, one row per architecture.

    The one ranking every view of a run uses (``show``, ``export``, the report,
    ``DIR:topK``). Only COMPLETE candidates holding the ranking metric count; reused
    duplicates are left out, and isomorphic blocks (one canonical key) evaluated more than
    once (without dedupe) appear once, as their best evaluation. Ties go to the earlier id.

    A single-objective run (no ``objectives``) ranks by ``by``, the reward by default.
    A multi-objective run passes its ``objectives`` (metric names or aliases, see
    :mod:`blockqnn.pareto`): its reward is steered by a random weight per iteration, so it
    compares nothing across iterations; the run ranks by its Pareto front instead: the
    members of the front first, then the rest, each part best first by ``by`` (accuracy
    by default). ``by`` names any metric (higher is better); ValueError for a malformed
    name or bad objectives.
    """
    by = by or ("accuracy" if objectives else "reward")
    if not METRIC_NAME.match(by):
        raise ValueError(f"cannot rank by {by!r}: not a metric name")
    scored = [
        c
        for c in candidates
        if c.state == CandidateState.COMPLETE and c.reused_from is None and c.metric(by) is not None
    ]
    scored.sort(key=lambda c: (-c.metric(by), c.id))
    seen: set[str] = set()
    ranking = []
    for c in scored:
        if c.key not in seen:
            seen.add(c.key)
            ranking.append(c)
    if not objectives:
        return ranking
    objs = pareto.objectives(objectives)
    members = {c.id for c in pareto.front(ranking, lambda c: pareto.gains(c.named(), objs))}
    return [c for c in ranking if c.id in members] + [c for c in ranking if c.id not in members]


class RunStore:
    """The database of one search run.

    Contract: the search loop (the master) is the only writer; every public method that
    changes the database is one transaction, so it either happens whole or not at all.
    Other processes may open the same run to read it (e.g. a status report) while the
    master writes; WAL mode lets them read a consistent snapshot without blocking it.

    Not thread-safe: use a store only from the thread that opened it (``sqlite3``'s
    ``check_same_thread`` guard raises otherwise). Open one store per process.

    ``path`` is the database file, or an existing run directory (meaning its ``run.db``).
    """

    def __init__(self, path: Path, conn: sqlite3.Connection, config_text: str) -> None:
        """Internal: use :meth:`create` or :meth:`open`."""
        self._path = path
        self._conn: sqlite3.Connection | None = conn
        self._config_text = config_text
        self._identity = _identity(path)
        self._wrote = False  #: whether this store committed a write (readers never checkpoint)
        self._reused: list[tuple[Any, ...]] = []  # reused rows not yet written, id order
        self._last_id: int | None = None  # the highest candidate id (written or buffered)
        self._log_counts: dict[str, int] | None = None  # items of each agent log written
        self._uncommitted_logs: dict[str, int] | None = None

    # -- opening and closing -------------------------------------------------------------

    @classmethod
    def create(cls, path: str | Path, config: dict[str, Any]) -> RunStore:
        """Create a new run database holding ``config`` (any JSON-compatible dict).

        Parent directories are created. Raises :class:`StoreError` if the file (or a
        leftover ``-wal``/``-shm``/``-journal`` file beside it) exists: a run is never
        overwritten. A crash during creation leaves no file that :meth:`open` accepts,
        only an :func:`uninitialised` one, which this replaces (the caller holds the run
        lock, so no other process is creating it).
        """
        db = _resolve(path)
        config_text = _dumps(config, "config")
        if uninitialised(db):
            logger.warning("replacing %s, which holds no run (its creation was cut short)", db)
            _remove_database(db)
        _refuse_existing(db)
        db.parent.mkdir(parents=True, exist_ok=True)
        try:
            db.open("x").close()  # atomic: two creators cannot both succeed
        except FileExistsError:
            raise StoreError(f"{db} already exists; refusing to overwrite a run") from None
        conn = _init_database(db, config_text)
        logger.info("created run database %s", db)
        store = cls(db, conn, config_text)
        store.checkpoint()  # the schema and configuration in the file itself from the start
        return store

    @classmethod
    def open(cls, path: str | Path) -> RunStore:
        """Open an existing run database after checking it is one, intact and readable.

        Raises :class:`StoreError` naming the file if it does not exist, is not a blockqnn
        run database (not SQLite, or another application's), is corrupt, or was written
        by a newer schema version. A rejected file is left as it is (beyond SQLite's own
        recovery of an interrupted transaction). A database of an older schema version is
        migrated to the current one in one transaction (see :func:`_migrate_v1`).

        On read-only media (the file or its directory is not writable) the database is
        opened read-only, so readers (``show``, ``report``) work there; writing raises. An
        older schema version there is migrated in a copy in memory, left read-only too.
        """
        db = _resolve(path)
        _check_header(db)
        _check_tables(db)
        read_only = not _writable(db)
        try:
            conn = _connect(db, read_only=read_only)
        except sqlite3.OperationalError as exc:  # cannot open, locked, I/O error
            raise StoreError(f"{db} cannot be opened ({exc})") from exc
        except sqlite3.Error as exc:  # an SQLite header, but unreadable content
            raise StoreError(f"{db} is corrupt ({exc})") from exc
        try:
            config_text, version = _validate(conn, db)
            if version != SCHEMA_VERSION:
                conn = _in_memory(conn, db) if read_only else conn
                _migrate(conn, db, version)
            if version != SCHEMA_VERSION or not read_only:
                _create_rung_tables(conn, db)
            if read_only and version != SCHEMA_VERSION:
                conn.execute("PRAGMA query_only = ON")
        except BaseException:
            conn.close()
            raise
        logger.info("opened run database %s", db)
        return cls(db, conn, config_text)

    def close(self) -> None:
        """Write the buffered reused candidates, checkpoint the write-ahead log into the
        database and empty it (when this store has written), and close; later calls raise
        :class:`StoreError`. Idempotent."""
        if self._conn is not None:
            try:
                if self._reused:
                    self._flush_reused()
                if self._wrote:
                    self.checkpoint(truncate=True)
            finally:
                self._conn.close()
                self._conn = None

    def checkpoint(self, truncate: bool = False) -> None:
        """Copy the committed transactions of the write-ahead log into the database file
        (``PASSIVE``: never waits for readers), so the file alone holds the run; with
        ``truncate`` also empty the log (``TRUNCATE``, waiting up to the busy timeout for
        readers). Does nothing on a read-only connection; a failure is logged, not raised
        (the log still holds the data)."""
        conn = self._connection()
        if conn.execute("PRAGMA query_only").fetchone()[0] or not _writable(self._path):
            return
        mode = "TRUNCATE" if truncate else "PASSIVE"
        try:
            conn.execute(f"PRAGMA wal_checkpoint({mode})")
        except sqlite3.Error as exc:
            logger.warning("%s: checkpoint of the write-ahead log failed (%s)", self._path, exc)

    def check_in_place(self) -> None:
        """Raise :class:`StoreError` when the database file was removed or replaced since
        it was opened (``rm -rf`` of the run directory): writes would go to a deleted file
        and be lost."""
        if _identity(self._path) != self._identity:
            raise StoreError(
                f"{self._path} was removed or replaced while this process had it open "
                "(the run directory deleted?); stopping, as nothing written now could be kept"
            )

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    @property
    def config(self) -> dict[str, Any]:
        """The configuration stored at creation (a fresh copy on every access)."""
        return json.loads(self._config_text)

    # -- candidate changes (each one transaction) ----------------------------------------

    def add_candidate(
        self,
        arch: str,
        key: str,
        iteration: int,
        epsilon: float | None,
        agent_state: dict[str, Any] | None,
    ) -> int:
        """Record a proposed candidate as PENDING and return its id.

        ``agent_state`` (the agent after proposing it) is saved in the same transaction;
        ``None`` leaves the stored agent state unchanged. The same holds for every method
        below that takes an ``agent_state``. Its optional key ``"logs"`` maps names to
        append-only lists: each save writes only the items added since the last one (one
        row each), so a growing log costs O(new items) per save, not O(length); a log
        that shrank is a ValueError. :meth:`agent_state` returns the lists whole.
        """
        state = self._agent_rows(agent_state)
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO candidates (id, arch, key, state, iteration, epsilon, created)"
                " VALUES (?, ?, ?, 'pending', ?, ?, ?)",
                (self._next_id(), arch, key, int(iteration), _opt_float(epsilon), time.time()),
            )
            self._save_agent(conn, state)
        self._last_id = _rowid(cursor)
        return self._last_id

    def mark_running(self, cid: int, worker: str | None = None) -> None:
        """Mark a PENDING (or already RUNNING) candidate as started: RUNNING, one more attempt.

        Raises :class:`StoreError` if the candidate does not exist or is final.
        """
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE candidates SET state = 'running', attempts = attempts + 1,"
                " started = ?, worker = ? WHERE id = ? AND state IN ('pending', 'running')",
                (time.time(), worker, cid),
            )
            self._check_changed(conn, cursor, cid, "start")

    def record_worker(self, cid: int, worker: str) -> None:
        """Name the worker that ran ``cid``'s latest attempt (known once its outcome is
        back). Raises :class:`StoreError` if the candidate does not exist."""
        with self._write() as conn:
            cursor = conn.execute("UPDATE candidates SET worker = ? WHERE id = ?", (worker, cid))
            self._check_changed(conn, cursor, cid, "name the worker of")

    def complete(
        self,
        cid: int,
        result: Result,
        reward: float,
        agent_state: dict[str, Any] | None,
        rung: tuple[int, float] | None = None,
    ) -> None:
        """Store an evaluation's ``result`` and ``reward``; the candidate becomes COMPLETE.

        ``agent_state`` is the agent after learning from this reward. ``rung`` (index,
        budget) marks the result of the top rung of a multi-fidelity evaluation: its rung
        row is written too and ``cost_s`` sums every rung's cost. The result's curve is
        stored either way. Raises :class:`StoreError` if the candidate does not exist or
        is not PENDING/RUNNING (so a result is never counted twice); then nothing is written.
        """
        extra_text = _dumps(result.extra, "result.extra")
        state = self._agent_rows(agent_state)
        with self._write() as conn:
            if rung is None:
                _insert_curve(conn, cid, 0, result)
            else:
                _insert_rung(conn, cid, *rung, result, reward)
            values = list(_result_values(result))
            values[-1] = _rungs_cost(conn, cid) or values[-1]
            cursor = conn.execute(
                "UPDATE candidates SET state = 'complete', accuracy = ?, metrics = ?,"
                " cost_s = ?, reward = ?, extra = ?,"
                " finished = ? WHERE id = ? AND state IN ('pending', 'running')",
                (*values, float(reward), extra_text, time.time(), cid),
            )
            self._check_changed(conn, cursor, cid, "complete")
            conn.execute("DELETE FROM rung_states WHERE cid = ?", (cid,))
            _settle_waiting(conn, cid)
            self._save_agent(conn, state)

    def record_rung(
        self, cid: int, rung: int, budget: float, result: Result, reward: float
    ) -> None:
        """Store a promoted candidate's result at ``rung`` (its budget ``budget``), the
        reward measured there and the state it continues from (``result.state``: see
        :meth:`rung_state`); the candidate stays RUNNING, to continue at the next rung.

        Raises :class:`StoreError` (writing nothing) unless the candidate is PENDING/RUNNING.
        """
        with self._write() as conn:
            self._check_unfinished(conn, cid, "record a rung of")
            _insert_rung(conn, cid, rung, budget, result, reward)
            conn.execute("DELETE FROM rung_states WHERE cid = ?", (cid,))
            if result.state is not None:
                conn.execute(
                    "INSERT INTO rung_states (cid, state) VALUES (?, ?)", (cid, result.state)
                )

    def rung_state(self, cid: int) -> bytes | None:
        """The state candidate ``cid``'s next rung continues from (what its last promoted
        rung's evaluation returned), or None. It is kept until the candidate is final."""
        with self._read(buffered=False) as conn:
            row = conn.execute("SELECT state FROM rung_states WHERE cid = ?", (cid,)).fetchone()
        return None if row is None else bytes(row[0])

    def stop(
        self,
        cid: int,
        rung: int,
        budget: float,
        result: Result,
        reward: float,
        estimate: dict[str, float],
        agent_state: dict[str, Any] | None,
    ) -> None:
        """Store the result of a candidate stopped at ``rung`` below the top; it becomes
        COMPLETE with no measured full-budget ``accuracy``/``reward`` (NULL: leaderboards
        rank only measured ones), the result's metrics, ``cost_s`` summed over its
        rungs and ``extra["estimate"]`` = ``estimate`` (the estimated full-budget accuracy
        and reward the agent was told), in one transaction with ``agent_state``.

        Raises :class:`StoreError` (writing nothing) unless the candidate is PENDING/RUNNING.
        """
        extra_text = _dumps({**result.extra, "estimate": estimate}, "result.extra")
        state = self._agent_rows(agent_state)
        with self._write() as conn:
            self._check_unfinished(conn, cid, "stop")
            conn.execute("DELETE FROM rung_states WHERE cid = ?", (cid,))
            _insert_rung(conn, cid, rung, budget, result, reward)
            _, metrics, _ = _result_values(result)
            conn.execute(
                "UPDATE candidates SET state = 'complete', metrics = ?, cost_s = ?, extra = ?,"
                " finished = ? WHERE id = ?",
                (metrics, _rungs_cost(conn, cid), extra_text, time.time(), cid),
            )
            _settle_waiting(conn, cid)
            self._save_agent(conn, state)

    def fail(
        self,
        cid: int,
        error: str,
        agent_state: dict[str, Any] | None = None,
        refused: bool = False,
    ) -> None:
        """Mark a PENDING/RUNNING candidate FAILED with ``error``; ``refused`` marks one
        refused by a constraint before any training (``extra["refused"]``, counted by
        :meth:`count_refused`). Its waiting duplicates are released in the same
        transaction (:meth:`add_waiting`).

        Raises :class:`StoreError` if it does not exist or is already final.
        """
        state = self._agent_rows(agent_state)
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE candidates SET state = 'failed', error = ?, finished = ?,"
                " extra = CASE WHEN ? THEN json_set(extra, '$.refused', json('true'))"
                " ELSE extra END WHERE id = ? AND state IN ('pending', 'running')",
                (error, time.time(), refused, cid),
            )
            self._check_changed(conn, cursor, cid, "fail")
            conn.execute("DELETE FROM rung_states WHERE cid = ?", (cid,))
            _release_waiting(conn, cid)
            self._save_agent(conn, state)

    def add_reused(
        self,
        arch: str,
        key: str,
        iteration: int,
        epsilon: float | None,
        source_id: int,
        reward: float | None,
        agent_state: dict[str, Any] | None,
    ) -> int:
        """Record a duplicate that reuses a stored result; return its id.

        The new candidate is COMPLETE with the source's metrics and ``extra``, the given
        ``reward`` (None for a duplicate of a candidate stopped at a low rung, whose
        estimate is in the copied ``extra``),
        ``cost_s = 0`` and ``reused_from`` naming the original evaluation (the source's
        own source, if the source is itself reused). Raises :class:`StoreError` unless
        ``source_id`` is a COMPLETE candidate.
        """
        state = self._agent_rows(agent_state)
        if self._reused and source_id >= self._reused[0][0]:
            self._flush_reused()  # the source may be buffered itself
        conn = self._connection()  # a read that leaves the buffer be
        row = conn.execute("SELECT state FROM candidates WHERE id = ?", (source_id,)).fetchone()
        if row is None or row[0] != CandidateState.COMPLETE.value:
            raise StoreError(
                f"{self._path}: cannot reuse candidate {source_id}: "
                f"{self._describe(conn, source_id)}, not complete"
            )
        now = time.time()
        cid = self._next_id()
        self._reused.append(
            (
                cid,
                arch,
                key,
                int(iteration),
                _opt_float(epsilon),
                _opt_float(reward),
                now,
                now,
                now,
                source_id,
            )
        )
        self._last_id = cid
        if state is not None or len(self._reused) >= REUSED_BATCH:
            with self._write() as conn:
                self._save_agent(conn, state)
        return cid

    def add_waiting(
        self, arch: str, key: str, iteration: int, epsilon: float | None, source_id: int
    ) -> int:
        """Record a proposal isomorphic to candidate ``source_id``, which is still being
        evaluated, as PENDING with ``reused_from = source_id``: it is not trained, but
        waits for its source's result. When the source completes (or stops at a rung) it
        becomes a reused candidate with the source's result, in the same transaction; when
        the source fails, the first one waiting is released (``reused_from`` cleared: it
        is trained itself) and the others wait for it. Returns its id; StoreError unless
        ``source_id`` is an unfinished, non-waiting candidate."""
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO candidates (id, arch, key, state, iteration, epsilon, created,"
                " reused_from) SELECT ?, ?, ?, 'pending', ?, ?, ?, id FROM candidates"
                " WHERE id = ? AND state IN ('pending', 'running') AND reused_from IS NULL",
                (
                    self._next_id(),
                    arch,
                    key,
                    int(iteration),
                    _opt_float(epsilon),
                    time.time(),
                    source_id,
                ),
            )
            if cursor.rowcount != 1:
                found = self._describe(conn, source_id)
                raise StoreError(
                    f"{self._path}: cannot wait for candidate {source_id}: {found}, not in flight"
                )
        self._last_id = _rowid(cursor)
        return self._last_id

    def waiting(self) -> list[Candidate]:
        """The candidates waiting for an isomorphic one in flight (:meth:`add_waiting`),
        in id order."""
        with self._read() as conn:
            return self._select(
                conn, "WHERE state = 'pending' AND reused_from IS NOT NULL ORDER BY id"
            )

    def requeue_unfinished(self) -> list[Candidate]:
        """On resume: set RUNNING candidates back to PENDING; return every PENDING one to
        evaluate (not those :meth:`waiting`) in id order.

        ``attempts`` counts starts that ended in a worker: the start the master's exit
        interrupted is taken back, so restarting the master never uses up a candidate's
        retries. ``started`` and ``worker`` are cleared.
        """
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE candidates SET state = 'pending', started = NULL, worker = NULL,"
                " attempts = max(attempts - 1, 0) WHERE state = 'running'"
            )
            pending = self._select(
                conn, "WHERE state = 'pending' AND reused_from IS NULL ORDER BY id"
            )
        if cursor.rowcount:
            logger.info("requeued %d interrupted candidates", cursor.rowcount)
        return pending

    # -- queries -------------------------------------------------------------------------

    def get(self, cid: int) -> Candidate:
        """The candidate with id ``cid``; :class:`StoreError` if there is none."""
        with self._read() as conn:
            found = self._select(conn, "WHERE id = ?", (cid,))
        if not found:
            raise StoreError(f"{self._path}: no candidate {cid}")
        return found[0]

    def candidates(self, states: Iterable[CandidateState] | None = None) -> list[Candidate]:
        """All candidates (or those in ``states``), in id order."""
        with self._read() as conn:
            if states is None:
                return self._select(conn, "ORDER BY id")
            values = [CandidateState(s).value for s in states]
            marks = ", ".join("?" * len(values))
            return self._select(conn, f"WHERE state IN ({marks}) ORDER BY id", values)

    def find_by_key(self, key: str) -> Candidate | None:
        """The first COMPLETE, non-reused candidate with canonical ``key``, or None."""
        with self._read(buffered=False) as conn:
            found = self._select(
                conn,
                "WHERE key = ? AND state = 'complete' AND reused_from IS NULL ORDER BY id LIMIT 1",
                (key,),
            )
        return found[0] if found else None

    def rung_results(self) -> list[RungResult]:
        """Every stored rung result, in the order they were stored."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT cid, rung, budget, accuracy, reward FROM rungs ORDER BY finished, cid"
            ).fetchall()
        return [RungResult(*row) for row in rows]

    def curve(self, cid: int) -> list[dict[str, Any]]:
        """Candidate ``cid``'s validation curve: one dict per epoch trained, in order, with
        ``epoch`` (1-based, or a table rung's budget), ``rung`` (0 without rungs),
        ``val_accuracy`` (percent) and ``val_loss`` (None when not measured).
        Empty for a candidate without a stored curve (or no such candidate)."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT epoch, rung, val_accuracy, val_loss FROM curves WHERE cid = ?"
                " ORDER BY epoch",
                (cid,),
            ).fetchall()
        keys = ("epoch", "rung", "val_accuracy", "val_loss")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def agent_state(self) -> dict[str, Any] | None:
        """The agent state saved last, or None if none was ever saved."""
        with self._read() as conn:
            row = conn.execute("SELECT state FROM agent WHERE id = 1").fetchone()
            if row is None:
                return None
            state = json.loads(row[0])
            if state.get(LOGS_KEY):
                state[LOGS_KEY] = {
                    name: [
                        json.loads(v)
                        for (v,) in conn.execute(
                            "SELECT value FROM agent_log WHERE name = ? AND idx < ? ORDER BY idx",
                            (name, count),
                        )
                    ]
                    for name, count in state[LOGS_KEY].items()
                }
        return state

    def counts(self) -> dict[str, int]:
        """Number of candidates per state value (every state present, zeros included)."""
        with self._read() as conn:
            rows = conn.execute("SELECT state, COUNT(*) FROM candidates GROUP BY state")
            found = dict(rows.fetchall())
        return {state.value: found.get(state.value, 0) for state in CandidateState}

    def count_reused(self) -> int:
        """Number of candidates that reuse another's result (complete isomorphic
        duplicates; not those still :meth:`waiting`)."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT COUNT(*) FROM candidates"
                " WHERE reused_from IS NOT NULL AND state = 'complete'"
            )
            return int(row.fetchone()[0])

    def count_refused(self) -> int:
        """Number of candidates refused by a constraint before any training (failed with
        ``refused``, see :meth:`fail`)."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT COUNT(*) FROM candidates"
                " WHERE state = 'failed' AND json_extract(extra, '$.refused')"
            )
            return int(row.fetchone()[0])

    def top(self, k: int, by: str | None = None) -> list[Candidate]:
        """The first ``k`` of the run's ranking (:func:`rank`, by the run's stored
        ``objectives`` when it has them). A single-objective run's is sorted by SQLite,
        reading only the rows up to the ``k``-th architecture (a leaderboard of a run of
        100,000 candidates reads a few rows, not the run)."""
        if k < 0:
            raise ValueError(f"k must be non-negative, got {k}")
        objectives = self.config.get("objectives") or ()
        if objectives:
            return rank(self.candidates([CandidateState.COMPLETE]), by, objectives)[:k]
        by = by or "reward"
        if not METRIC_NAME.match(by):
            raise ValueError(f"cannot rank by {by!r}: not a metric name")
        value = by if by in _COLUMN_METRICS else "json_extract(metrics, ?)"
        params = () if by in _COLUMN_METRICS else (f"$.{by}",)
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM (SELECT *, {value} AS value FROM candidates"
                " WHERE state = 'complete' AND reused_from IS NULL)"
                " WHERE value IS NOT NULL ORDER BY value DESC, id",
                params,
            )
            seen: set[str] = set()
            ranking = []
            for row in rows:
                if len(ranking) == k:
                    break
                candidate = _to_candidate(row)
                if candidate.key not in seen:
                    seen.add(candidate.key)
                    ranking.append(candidate)
        return ranking

    def metric_names(self) -> list[str]:
        """The names of every metric some COMPLETE candidate has, sorted (``reward`` and
        ``accuracy`` first when present)."""
        with self._read() as conn:
            # reused candidates copy their source's metrics: the originals have every name
            originals = "FROM candidates WHERE state = 'complete' AND reused_from IS NULL"
            rows = conn.execute(
                "SELECT DISTINCT j.key FROM (SELECT metrics"
                f" {originals}) AS c, json_each(c.metrics) AS j"
            ).fetchall()
            has_columns = conn.execute(
                f"SELECT COUNT(reward), COUNT(accuracy) {originals}"
            ).fetchone()
        first = [name for name, n in zip(("reward", "accuracy"), has_columns, strict=True) if n]
        return first + sorted(row[0] for row in rows)

    # -- metadata ------------------------------------------------------------------------

    def set_meta(self, key: str, value: Any) -> None:
        """Store a JSON-compatible ``value`` under ``key`` (e.g. run status, timings).

        The keys the store itself uses (``app``, ``schema_version``, ``config``,
        ``created``) are refused with ValueError.
        """
        if key in _RESERVED_META:
            raise ValueError(f"meta key {key!r} is reserved by the run store")
        text = _dumps(value, f"meta {key!r}")
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, text))

    def get_meta(self, key: str, default: Any = None) -> Any:
        """The value stored under ``key``, or ``default``."""
        text = self._read_meta_text(key)
        return default if text is None else json.loads(text)

    # -- internals -----------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"run store {self._path} is closed")
        return self._conn

    @contextmanager
    def _read(self, buffered: bool = True) -> Iterator[sqlite3.Connection]:
        """Run reads, turning SQLite errors into :class:`StoreError`. ``buffered``: the
        reads may concern reused candidates, so the buffered ones are written first."""
        conn = self._connection()
        if buffered and self._reused:
            self._flush_reused()
        try:
            yield conn
        except sqlite3.Error as exc:
            raise StoreError(f"{self._path}: read failed ({exc})") from exc

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: committed whole, or rolled back on error."""
        conn = self._connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._write_reused(conn)
                yield conn
            except BaseException:
                self._uncommitted_logs = None
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            self._wrote = True
        except sqlite3.Error as exc:
            raise StoreError(f"{self._path}: write failed ({exc})") from exc
        self._reused.clear()
        if self._uncommitted_logs is not None:
            self._log_counts, self._uncommitted_logs = self._uncommitted_logs, None

    def _flush_reused(self) -> None:
        """Write the buffered reused candidates (one transaction)."""
        with self._write():
            pass

    def _write_reused(self, conn: sqlite3.Connection) -> None:
        """Insert the buffered reused candidates (inside the open transaction)."""
        if not self._reused:
            return
        before = conn.total_changes
        conn.executemany(
            "INSERT INTO candidates (id, arch, key, state, iteration, epsilon, reward,"
            " created, started, finished, reused_from, accuracy, metrics, cost_s, extra)"
            " SELECT ?, ?, ?, 'complete', ?, ?, ?, ?, ?, ?, COALESCE(reused_from, id),"
            " accuracy, metrics, 0.0, extra FROM candidates WHERE id = ? AND state = 'complete'",
            self._reused,
        )
        if conn.total_changes - before != len(self._reused):
            raise StoreError(f"{self._path}: a reused candidate's source is not complete")

    def _next_id(self) -> int:
        """The id the next candidate gets (ids are dense: 1, 2, ... in proposal order)."""
        if self._last_id is None:
            conn = self._connection()
            self._last_id = conn.execute("SELECT MAX(id) FROM candidates").fetchone()[0] or 0
        return self._last_id + 1

    def _agent_rows(self, agent_state: dict[str, Any] | None) -> _AgentRows | None:
        """``agent_state`` as the text of its ``agent`` row and the new items of its logs
        (TypeError if it is not JSON-serialisable, ValueError if a log shrank)."""
        if agent_state is None:
            return None
        logs = agent_state.get(LOGS_KEY) or {}
        written = self._written_logs()
        items, counts = [], {}
        for name, values in logs.items():
            start = written.get(name, 0)
            if len(values) < start:
                raise ValueError(f"agent log {name!r} shrank from {start} to {len(values)} items")
            items += [
                (name, i, _dumps(v, f"agent log {name!r}"))
                for i, v in enumerate(values[start:], start)
            ]
            counts[name] = len(values)
        if LOGS_KEY in agent_state:
            agent_state = {**agent_state, LOGS_KEY: counts}
        text = _dumps(agent_state, "agent_state")
        return _AgentRows(text, items, {**written, **counts})

    def _written_logs(self) -> dict[str, int]:
        """How many items of each agent log the database holds."""
        if self._log_counts is None:
            with self._read() as conn:
                row = conn.execute("SELECT state FROM agent WHERE id = 1").fetchone()
            self._log_counts = {} if row is None else dict(json.loads(row[0]).get(LOGS_KEY, {}))
        return self._log_counts

    def _save_agent(self, conn: sqlite3.Connection, state: _AgentRows | None) -> None:
        """Write the agent row and the new log items (inside the open transaction)."""
        if state is None:
            return
        conn.executemany(
            "INSERT OR REPLACE INTO agent_log (name, idx, value) VALUES (?, ?, ?)", state.items
        )
        conn.execute(
            "INSERT OR REPLACE INTO agent (id, state, updated) VALUES (1, ?, ?)",
            (state.text, time.time()),
        )
        self._uncommitted_logs = state.counts

    def _read_meta_text(self, key: str) -> str | None:
        with self._read() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    @staticmethod
    def _select(
        conn: sqlite3.Connection, clause: str, params: Iterable[Any] = ()
    ) -> list[Candidate]:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM candidates {clause}", tuple(params))
        return [_to_candidate(row) for row in rows]

    def _check_changed(
        self, conn: sqlite3.Connection, cursor: sqlite3.Cursor, cid: int, action: str
    ) -> None:
        """Raise :class:`StoreError` if an update guarded by the state matched no row."""
        if cursor.rowcount != 1:
            raise StoreError(
                f"{self._path}: cannot {action} candidate {cid}: {self._describe(conn, cid)}"
            )

    def _check_unfinished(self, conn: sqlite3.Connection, cid: int, action: str) -> None:
        """Raise :class:`StoreError` unless candidate ``cid`` is PENDING or RUNNING."""
        row = conn.execute("SELECT state FROM candidates WHERE id = ?", (cid,)).fetchone()
        if row is None or row[0] not in ("pending", "running"):
            raise StoreError(
                f"{self._path}: cannot {action} candidate {cid}: {self._describe(conn, cid)}"
            )

    @staticmethod
    def _describe(conn: sqlite3.Connection, cid: int) -> str:
        row = conn.execute("SELECT state FROM candidates WHERE id = ?", (cid,)).fetchone()
        return "no such candidate" if row is None else f"it is {row[0]}"


# -- module helpers ----------------------------------------------------------------------


def _resolve(path: str | Path) -> Path:
    """The database file: ``path`` itself, or ``path/run.db`` if it is a directory."""
    path = Path(path)
    return path / DB_FILENAME if path.is_dir() else path


def _identity(db: Path) -> tuple[int, int] | None:
    """The file's (device, inode), None when it is gone (an in-memory copy has its
    file's)."""
    try:
        st = os.stat(db)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def uninitialised(path: str | Path) -> bool:
    """Whether ``path`` (a database file or run directory) is a run database whose creation
    was cut short: an empty file, or an SQLite file without a table, and no write-ahead
    log that could hold data. Such a file holds no run; :meth:`RunStore.create` replaces it."""
    db = _resolve(path)
    try:
        if not db.is_file() or _log(db) is not None:
            return False
        if db.stat().st_size == 0:
            return True
        with db.open("rb") as handle:
            return handle.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC and _tables(db) == 0
    except (OSError, sqlite3.Error):
        return False


def _log(db: Path) -> Path | None:
    """The database's write-ahead log, if it exists and holds something."""
    wal = db.with_name(db.name + "-wal")
    try:
        return wal if wal.stat().st_size > 0 else None
    except FileNotFoundError:
        return None


def _tables(db: Path) -> int:
    """How many tables the database file itself holds (its log not read; sqlite3.Error
    for a file SQLite cannot read)."""
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    finally:
        conn.close()


def _copied(db: Path) -> sqlite3.Connection:
    """An in-memory copy of the database with its write-ahead log applied, read through
    copies of both in a temporary directory: the originals stay as they are (opening them
    in place would delete a log SQLite cannot use, and read-only media without ``-shm``
    cannot be opened with their log at all)."""
    with tempfile.TemporaryDirectory(prefix="blockqnn-") as tmp:
        copy = Path(tmp) / db.name
        try:
            shutil.copyfile(db, copy)
            shutil.copyfile(db.with_name(db.name + "-wal"), copy.with_name(copy.name + "-wal"))
        except OSError as exc:
            raise StoreError(f"{db} cannot be read ({exc})") from exc
        return _in_memory(sqlite3.connect(copy, isolation_level=None), db)


def _check_tables(db: Path) -> None:
    """StoreError, saying why, when neither the database file nor its log holds a table:
    the log was lost or damaged, or the run's creation was cut short."""
    try:
        if _tables(db) or (_log(db) is not None and _has_tables(_copied(db))):
            return
    except sqlite3.Error:
        return  # not readable as SQLite: the checks that follow say how
    raise StoreError(_no_tables(db))


def _has_tables(conn: sqlite3.Connection) -> bool:
    try:
        return conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0
    finally:
        conn.close()


def _writable(db: Path) -> bool:
    return os.access(db, os.W_OK) and os.access(db.parent, os.W_OK)


def _connect(db: Path, read_only: bool = False) -> sqlite3.Connection:
    """Connect to an existing file (never creating one) in autocommit mode.

    ``read_only``: for a file that cannot be written. Without its ``-wal``/``-shm`` files
    (a run closed cleanly) SQLite cannot open it in WAL mode except as ``immutable``,
    which is exact then: nothing can change it. With a log but no ``-shm`` (a writer
    killed, the directory then made read-only) the connection is to an in-memory copy with
    the log applied (:func:`_copied`), so the log's data is not ignored.
    """
    mode = "rw"
    if read_only:
        wal, shm = (db.with_name(db.name + s) for s in ("-wal", "-shm"))
        if _log(db) is not None and not shm.exists():
            conn = _copied(db)  # SQLite cannot read the log there: read it from a copy
            conn.execute("PRAGMA query_only = ON")
            return conn
        mode = "ro" if wal.exists() and shm.exists() else "ro&immutable=1"
    uri = f"{db.resolve().as_uri()}?mode={mode}"
    conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error:
        conn.close()
        raise
    return conn


def _refuse_existing(db: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        other = db.with_name(db.name + suffix)
        if other.exists():
            raise StoreError(f"{other} already exists; refusing to overwrite a run")


def _remove_database(db: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)


def _init_database(db: Path, config_text: str) -> sqlite3.Connection:
    """Fill the freshly created empty file ``db``; on any failure remove it and raise."""
    try:
        conn = _connect(db)
    except sqlite3.Error as exc:
        _remove_database(db)
        raise StoreError(f"{db} cannot be created ({exc})") from exc
    try:
        _init_schema(conn, config_text)
    except BaseException as exc:
        conn.close()
        _remove_database(db)
        if isinstance(exc, sqlite3.Error):
            raise StoreError(f"{db} cannot be created ({exc})") from exc
        raise
    return conn


def _init_schema(conn: sqlite3.Connection, config_text: str) -> None:
    """Switch to WAL, then write schema, identity and config in one transaction."""
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("BEGIN IMMEDIATE")
    for statement in _SCHEMA:
        conn.execute(statement)
    meta = {
        "app": json.dumps(APP_NAME),
        "schema_version": json.dumps(SCHEMA_VERSION),
        "created": json.dumps(time.time()),
        "config": config_text,
    }
    conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta.items())
    conn.execute("COMMIT")


def _check_header(db: Path) -> None:
    """Reject missing files and files that are not SQLite before SQLite sees them."""
    if not db.exists():
        raise StoreError(f"{db} does not exist (no run database there)")
    try:
        with db.open("rb") as handle:
            header = handle.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        raise StoreError(f"{db} cannot be read ({exc})") from exc
    if not header:
        raise StoreError(
            f"{db} is an empty file: the run's creation was cut short and it holds no run;"
            f" a new search in {db.parent} replaces it"
        )
    if header != _SQLITE_MAGIC:
        raise StoreError(f"{db} is not a blockqnn run database (not an SQLite file)")


def _validate(conn: sqlite3.Connection, db: Path) -> tuple[str, int]:
    """Check identity, schema version and integrity of an open SQLite file; return the
    config and the schema version (the current one or one :data:`_MIGRATIONS` upgrades)."""
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if app_id != APPLICATION_ID:
            raise StoreError(
                f"{db} is not a blockqnn run database (application_id {app_id:#x},"
                f" expected {APPLICATION_ID:#x})"
            )
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{db} was written by a newer schema version {version}; this blockqnn"
                f" reads version {SCHEMA_VERSION}: upgrade blockqnn to open it"
            )
        if version not in _MIGRATIONS and version != SCHEMA_VERSION:
            raise StoreError(f"{db} is corrupt (unknown schema version {version})")
        config_text = _check_meta(conn, db)
        problems = [row[0] for row in conn.execute("PRAGMA quick_check(5)")]
    except sqlite3.Error as exc:
        raise StoreError(f"{db} is corrupt ({exc})") from exc
    if problems != ["ok"]:
        raise StoreError(f"{db} is corrupt ({'; '.join(problems)})")
    return config_text, version


def _no_tables(db: Path) -> str:
    """What an SQLite file without a single table means for a run database."""
    wal = db.with_name(db.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        return (
            f"{db} holds no run data and its write-ahead log {wal.name} holds nothing"
            " committed: the log is damaged (or the run's creation was cut short); restore"
            f" {wal.name} from a copy, or remove {db.name}* to start a new search there"
        )
    return (
        f"{db} holds no run data: its write-ahead log {wal.name}, which held the data not"
        " yet checkpointed into the database, is missing (or the run's creation was cut"
        f" short); restore {wal.name} from a copy, or start a new search in {db.parent},"
        " which replaces it"
    )


def _in_memory(conn: sqlite3.Connection, db: Path) -> sqlite3.Connection:
    """A copy of the database of ``conn`` in memory (``conn`` is closed)."""
    memory = sqlite3.connect(":memory:", isolation_level=None)
    try:
        conn.backup(memory)
    except sqlite3.Error as exc:
        memory.close()
        raise StoreError(f"{db} cannot be read ({exc})") from exc
    finally:
        conn.close()
    logger.info("%s: read into a copy in memory", db)
    return memory


def _migrate(conn: sqlite3.Connection, db: Path, version: int) -> None:
    """Bring a database of schema ``version`` to :data:`SCHEMA_VERSION`, in one transaction
    (a crash leaves it at ``version``)."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
                conn.execute("COMMIT")  # another process migrated it while we waited
                return
            _MIGRATIONS[version](conn)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute(
                "UPDATE meta SET value = ? WHERE key = 'schema_version'",
                (json.dumps(SCHEMA_VERSION),),
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        raise StoreError(
            f"{db}: cannot migrate schema {version} to {SCHEMA_VERSION} ({exc})"
        ) from exc
    logger.info("migrated %s from schema version %d to %d", db, version, SCHEMA_VERSION)


#: The metric columns of schema version 1, now entries of the ``metrics`` JSON column.
_V1_METRIC_COLUMNS = ("flops", "params", "density", "test_accuracy")


def _migrate_v1(conn: sqlite3.Connection) -> None:
    """Version 1 kept four metrics in columns: move the non-null ones into ``metrics``."""
    conn.execute("ALTER TABLE candidates ADD COLUMN metrics TEXT NOT NULL DEFAULT '{}'")
    columns = ", ".join(_V1_METRIC_COLUMNS)
    rows = conn.execute(f"SELECT id, {columns} FROM candidates").fetchall()
    # in Python, not SQLite's json_object, which rounds REALs to 15 digits
    updates = [
        (_dumps(_present(_V1_METRIC_COLUMNS, values), "metrics"), cid) for cid, *values in rows
    ]
    conn.executemany("UPDATE candidates SET metrics = ? WHERE id = ?", updates)
    for name in _V1_METRIC_COLUMNS:
        conn.execute(f"ALTER TABLE candidates DROP COLUMN {name}")


def _present(names: tuple[str, ...], values: list[Any]) -> dict[str, Any]:
    """The ``names`` whose value is not None, with their values."""
    return {k: v for k, v in zip(names, values, strict=True) if v is not None}


#: Migration of each older schema version to the current one.
_MIGRATIONS = {1: _migrate_v1}


def _check_meta(conn: sqlite3.Connection, db: Path) -> str:
    """Check the ``app`` entry names us; return the config text."""
    has_meta = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    if not has_meta:
        raise StoreError(f"{db} is not a blockqnn run database (no meta table)")
    rows = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('app', 'config')"))
    if rows.get("app") != json.dumps(APP_NAME):
        raise StoreError(f"{db} is not a blockqnn run database (meta app is {rows.get('app')})")
    if "config" not in rows:
        raise StoreError(f"{db} is corrupt (no config entry)")
    return rows["config"]


def _create_rung_tables(conn: sqlite3.Connection, db: Path) -> None:
    """Add the curve and rung tables to a database made before they existed."""
    try:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        tables = {"curves", "rungs", "rung_states", "agent_log", "candidates_original_by_key",
                  "candidates_waiting"}  # fmt: skip
        if not tables <= names:
            for statement in _RUNG_TABLES:
                conn.execute(statement)
    except sqlite3.Error as exc:
        raise StoreError(f"{db} cannot be upgraded with curve tables ({exc})") from exc


def _insert_curve(conn: sqlite3.Connection, cid: int, rung: int, result: Result) -> None:
    """The result's per-epoch curve points, labelled ``rung`` (a retrained epoch replaces
    the earlier one)."""
    conn.executemany(
        "INSERT OR REPLACE INTO curves (cid, epoch, rung, val_accuracy, val_loss)"
        " VALUES (?, ?, ?, ?, ?)",
        [
            (
                cid,
                int(p["epoch"]),
                rung,
                _opt_float(p.get("val_accuracy")),
                _opt_float(p.get("val_loss")),
            )
            for p in result.curve
        ],
    )


def _insert_rung(
    conn: sqlite3.Connection, cid: int, rung: int, budget: float, result: Result, reward: float
) -> None:
    """A rung's row and curve (a rung evaluated again replaces its row)."""
    conn.execute(
        "INSERT OR REPLACE INTO rungs (cid, rung, budget, accuracy, reward, cost_s, finished)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            cid,
            rung,
            float(budget),
            float(result.accuracy),
            float(reward),
            float(result.cost_s),
            time.time(),
        ),
    )
    _insert_curve(conn, cid, rung, result)


def _rungs_cost(conn: sqlite3.Connection, cid: int) -> float | None:
    """The summed cost of a candidate's rungs (None without rungs)."""
    return conn.execute("SELECT SUM(cost_s) FROM rungs WHERE cid = ?", (cid,)).fetchone()[0]


def _settle_waiting(conn: sqlite3.Connection, source: int) -> None:
    """The candidates waiting for ``source`` (just COMPLETE) reuse its result."""
    copied = ", ".join(
        f"{column} = (SELECT {column} FROM candidates WHERE id = :source)"
        for column in ("accuracy", "metrics", "reward", "extra")
    )
    conn.execute(
        f"UPDATE candidates SET state = 'complete', {copied}, cost_s = 0.0,"
        " started = :now, finished = :now"
        " WHERE reused_from = :source AND state = 'pending'",
        {"source": source, "now": time.time()},
    )


def _release_waiting(conn: sqlite3.Connection, source: int) -> None:
    """The first candidate waiting for ``source`` (just FAILED) is to be trained itself;
    the others wait for it."""
    row = conn.execute(
        "SELECT min(id) FROM candidates WHERE reused_from = ? AND state = 'pending'", (source,)
    ).fetchone()
    if row[0] is None:
        return
    conn.execute("UPDATE candidates SET reused_from = NULL WHERE id = ?", (row[0],))
    conn.execute(
        "UPDATE candidates SET reused_from = ? WHERE reused_from = ? AND state = 'pending'",
        (row[0], source),
    )


def _dumps(value: Any, what: str) -> str:
    try:
        return json.dumps(value, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} is not JSON-serialisable ({exc})") from exc


def _opt_float(value: float | None) -> float | None:
    return None if value is None else float(value)


def _result_values(result: Result) -> tuple[Any, ...]:
    """The accuracy, metrics (JSON) and cost of a result, as plain numbers (numpy-safe)."""
    metrics = {
        name: int(value) if isinstance(value, numbers.Integral) else float(value)
        for name, value in result.metrics.items()
    }
    return (float(result.accuracy), _dumps(metrics, "result.metrics"), float(result.cost_s))


def _rowid(cursor: sqlite3.Cursor) -> int:
    rowid = cursor.lastrowid
    assert rowid is not None, "an INSERT always sets lastrowid"
    return rowid


def _to_candidate(row: tuple[Any, ...]) -> Candidate:
    values = dict(zip(_FIELDS, row, strict=True))
    values["state"] = CandidateState(values["state"])
    values["extra"] = json.loads(values["extra"])
    values["metrics"] = json.loads(values["metrics"])
    return Candidate(**values)
