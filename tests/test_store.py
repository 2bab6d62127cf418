"""The run store: lifecycle, queries, crash safety (real SIGKILLs) and rejection of bad files."""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from blockqnn.evaluation import Result
from blockqnn.store import (
    APPLICATION_ID,
    DB_FILENAME,
    REUSED_BATCH,
    SCHEMA_VERSION,
    CandidateState,
    RunStore,
    StoreError,
    rank,
    uninitialised,
)

CONFIG = {"space": "nsc", "batch": 64, "epsilon": [[1.0, 95], [0.1, 12]], "mu": 1.0}
METRICS = {"flops": 0.25, "params": 123_456, "density": 1.4, "test_accuracy": 70.9}
RESULT = Result(
    accuracy=71.5,
    metrics=METRICS,
    cost_s=12.5,
    extra={"epochs": 12, "restarts": 0},
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RunStore]:
    with RunStore.create(tmp_path / DB_FILENAME, CONFIG) as run:
        yield run


def add(store: RunStore, key: str, agent_state: dict | None = None) -> int:
    return store.add_candidate(f"arch-{key}", key, 0, 1.0, agent_state)


def completed(store: RunStore, key: str, reward: float) -> int:
    cid = add(store, key)
    store.mark_running(cid)
    store.complete(cid, Result(accuracy=reward), reward, None)
    return cid


# -- create / open ---------------------------------------------------------------------


def test_create_then_open_round_trips_config_and_meta(tmp_path: Path) -> None:
    with RunStore.create(tmp_path / DB_FILENAME, CONFIG) as run:
        assert run.config == CONFIG
        run.set_meta("status", {"phase": "search", "elapsed_s": 3.5})
    with RunStore.open(tmp_path) as run:  # a run directory means its run.db
        assert run.path == tmp_path / DB_FILENAME
        assert run.config == CONFIG
        assert run.get_meta("status") == {"phase": "search", "elapsed_s": 3.5}
        assert run.get_meta("missing", default=7) == 7
        assert run.agent_state() is None
        assert run.counts() == {"pending": 0, "running": 0, "complete": 0, "failed": 0}
    raw = sqlite3.connect(tmp_path / DB_FILENAME)
    assert raw.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.close()


def test_config_is_a_copy(store: RunStore) -> None:
    store.config["batch"] = 1
    assert store.config["batch"] == 64


def test_set_meta_refuses_reserved_keys(store: RunStore) -> None:
    with pytest.raises(ValueError, match="reserved"):
        store.set_meta("config", {})
    assert store.config == CONFIG


@pytest.mark.parametrize("existing", ["", "-wal", "some text"])
def test_create_refuses_to_overwrite(tmp_path: Path, existing: str) -> None:
    db = tmp_path / DB_FILENAME
    if existing == "":
        RunStore.create(db, CONFIG).close()
    elif existing == "-wal":
        db.with_name(db.name + "-wal").write_bytes(b"stale")
    else:
        db.write_text(existing)
    before = db.read_bytes() if db.exists() else None
    with pytest.raises(StoreError, match="already exists"):
        RunStore.create(db, {"other": True})
    assert (db.read_bytes() if db.exists() else None) == before


def test_closed_store_raises(tmp_path: Path) -> None:
    run = RunStore.create(tmp_path / DB_FILENAME, CONFIG)
    run.close()
    run.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        run.counts()


# -- lifecycle -------------------------------------------------------------------------


def test_candidate_lifecycle_and_counts(store: RunStore) -> None:
    first = store.add_candidate("arch-a", "key-a", 3, 0.7, {"step": 1})
    second = store.add_candidate("arch-b", "key-b", 3, 0.7, {"step": 2})
    pending = store.get(first)
    assert (pending.state, pending.attempts, pending.started, pending.epsilon) == (
        CandidateState.PENDING,
        0,
        None,
        0.7,
    )
    assert (pending.arch, pending.key, pending.iteration) == ("arch-a", "key-a", 3)
    assert store.agent_state() == {"step": 2}

    store.mark_running(first, worker="node-1")
    running = store.get(first)
    assert running.state is CandidateState.RUNNING
    assert (running.attempts, running.worker) == (1, "node-1")
    assert running.started is not None and running.started >= pending.created

    store.complete(first, RESULT, 65.25, {"step": 3})
    done = store.get(first)
    assert done.state is CandidateState.COMPLETE
    assert (done.accuracy, done.metrics) == (71.5, METRICS)
    assert isinstance(done.metrics["params"], int)
    assert (done.test_accuracy, done.cost_s, done.reward) == (70.9, 12.5, 65.25)
    assert done.named() == {"reward": 65.25, "accuracy": 71.5, **METRICS}
    assert (done.metric("flops"), done.metric("reward"), done.metric("latency_ms")) == (
        0.25,
        65.25,
        None,
    )
    assert done.extra == {"epochs": 12, "restarts": 0}
    assert done.finished is not None and done.finished >= running.started
    assert store.agent_state() == {"step": 3}

    store.mark_running(second)
    store.fail(second, "diverged", {"step": 4})
    failed = store.get(second)
    assert (failed.state, failed.error) == (CandidateState.FAILED, "diverged")
    assert failed.accuracy is None and failed.finished is not None
    assert store.agent_state() == {"step": 4}

    add(store, "c")
    assert store.counts() == {"pending": 1, "running": 0, "complete": 1, "failed": 1}
    assert [c.id for c in store.candidates([CandidateState.FAILED, "pending"])] == [
        second,
        second + 1,
    ]
    assert [c.id for c in store.candidates()] == [first, second, second + 1]


def test_none_agent_state_keeps_the_stored_one(store: RunStore) -> None:
    cid = add(store, "a", {"q": 1})
    store.mark_running(cid)
    store.complete(cid, RESULT, 1.0, None)
    assert store.agent_state() == {"q": 1}


def test_result_counted_once(store: RunStore) -> None:
    cid = add(store, "a")
    store.mark_running(cid)
    store.complete(cid, RESULT, 50.0, {"n_done": 1})
    with pytest.raises(StoreError, match=f"cannot complete candidate {cid}: it is complete"):
        store.complete(cid, Result(accuracy=99.0), 99.0, {"n_done": 2})
    with pytest.raises(StoreError, match="it is complete"):
        store.fail(cid, "late failure", {"n_done": 3})
    with pytest.raises(StoreError, match="it is complete"):
        store.mark_running(cid)
    with pytest.raises(StoreError, match="no such candidate"):
        store.complete(cid + 100, RESULT, 1.0, {"n_done": 4})
    # a refused change writes nothing, agent state included
    assert store.get(cid).reward == 50.0
    assert store.get(cid).attempts == 1
    assert store.agent_state() == {"n_done": 1}


def test_failed_candidate_cannot_complete(store: RunStore) -> None:
    cid = add(store, "a")
    store.fail(cid, "refused", None)
    with pytest.raises(StoreError, match="it is failed"):
        store.complete(cid, RESULT, 1.0, None)


def test_requeue_unfinished(store: RunStore) -> None:
    running = add(store, "running")
    pending = add(store, "pending")
    done = add(store, "done")
    store.mark_running(running, worker="w")
    store.mark_running(done)
    store.complete(done, RESULT, 1.0, None)
    requeued = store.requeue_unfinished()
    assert [c.id for c in requeued] == [running, pending]
    again = store.get(running)
    assert (again.state, again.attempts, again.started, again.worker) == (
        CandidateState.PENDING,
        0,  # the interrupted start is not an attempt
        None,
        None,
    )
    assert store.get(done).state is CandidateState.COMPLETE
    store.mark_running(running)
    assert store.get(running).attempts == 1


def test_find_by_key_only_sees_complete_originals(store: RunStore) -> None:
    failed = add(store, "k")
    store.fail(failed, "boom")
    add(store, "k")  # pending
    running = add(store, "k")
    store.mark_running(running)
    assert store.find_by_key("k") is None
    original = completed(store, "k", 40.0)
    store.add_reused("arch-k2", "k", 1, 0.5, original, 40.0, None)
    assert store.find_by_key("k").id == original
    assert store.find_by_key("other") is None


def test_add_reused_copies_the_source(store: RunStore) -> None:
    source = add(store, "k")
    store.mark_running(source)
    store.complete(source, RESULT, 65.0, None)
    reused = store.get(store.add_reused("arch-x", "k", 2, 0.4, source, 66.0, {"n": 2}))
    assert reused.state is CandidateState.COMPLETE
    assert (reused.arch, reused.iteration, reused.epsilon) == ("arch-x", 2, 0.4)
    assert (reused.accuracy, reused.metrics, reused.extra) == (71.5, METRICS, RESULT.extra)
    assert (reused.reward, reused.cost_s, reused.reused_from) == (66.0, 0.0, source)
    assert store.agent_state() == {"n": 2}
    chained = store.get(store.add_reused("arch-y", "k", 2, 0.4, reused.id, 66.0, None))
    assert chained.reused_from == source
    pending = add(store, "p")
    with pytest.raises(StoreError, match=f"cannot reuse candidate {pending}: it is pending"):
        store.add_reused("arch-z", "p", 2, 0.4, pending, 1.0, {"n": 3})
    assert store.agent_state() == {"n": 2}


def test_reused_candidates_are_written_in_batches(store: RunStore) -> None:
    # re-proposals are buffered: another reader sees them once a batch, a change or a
    # read of this store writes them; ids stay dense and in proposal order
    source = completed(store, "k", 40.0)
    ids = [store.add_reused(f"arch-{i}", "k", 0, 1.0, source, 40.0, None) for i in range(3)]
    reader = sqlite3.connect(store.path)
    count = "SELECT COUNT(*) FROM candidates"
    assert reader.execute(count).fetchone()[0] == 1
    later = add(store, "p")  # a change writes the buffered rows first, in one transaction
    assert ids + [later] == [source + 1, source + 2, source + 3, source + 4]
    assert reader.execute(count).fetchone()[0] == 5
    for i in range(REUSED_BATCH):
        store.add_reused(f"arch-b{i}", "k", 0, 1.0, source, 40.0, None)
    assert reader.execute(count).fetchone()[0] == 5 + REUSED_BATCH  # a full batch
    store.add_reused("arch-last", "k", 0, 1.0, source, 40.0, None)
    assert store.counts()["complete"] == 1 + 3 + REUSED_BATCH + 1  # a read writes the rest
    reader.close()


def test_agent_logs_are_saved_item_by_item(store: RunStore) -> None:
    # an append-only log in the agent state costs its new items per save, not its length
    reader = sqlite3.connect(store.path)
    row_size = "SELECT length(state) FROM agent"
    logs = {"memory": [["a", 1.0]], "aliases": []}
    add(store, "a", {"n": 1, "logs": logs})
    size = reader.execute(row_size).fetchone()[0]
    logs = {"memory": [["a", 1.0], ["b", 2.0], ["c", 3.0]], "aliases": ["x"]}
    add(store, "b", {"n": 2, "logs": logs})
    assert reader.execute(row_size).fetchone()[0] == size
    assert store.agent_state() == {"n": 2, "logs": logs}
    with pytest.raises(ValueError, match="agent log 'memory' shrank from 3 to 1 items"):
        add(store, "c", {"n": 3, "logs": {"memory": [["a", 1.0]]}})
    reader.close()
    with RunStore.open(store.path) as again:  # a reopened store continues the logs
        longer = {"memory": [*logs["memory"], ["d", 4.0]], "aliases": ["x"]}
        add(again, "d", {"n": 4, "logs": longer})
        assert again.agent_state() == {"n": 4, "logs": longer}


def test_top(store: RunStore) -> None:
    low = completed(store, "a", 10.0)
    high = completed(store, "b", 30.0)
    tie = completed(store, "c", 30.0)
    store.add_reused("arch-b2", "b", 0, 1.0, high, 30.0, None)
    store.fail(add(store, "d"), "boom")
    add(store, "e")
    assert [c.id for c in store.top(10)] == [high, tie, low]
    assert [c.id for c in store.top(2)] == [high, tie]
    assert store.top(0) == []
    assert store.top(5, by="test_accuracy") == []  # none of them has one
    with pytest.raises(ValueError, match="cannot rank"):
        store.top(3, by="arch; DROP TABLE candidates")


def test_open_metrics_rank_and_list(store: RunStore) -> None:
    ids = []
    for i, latency in enumerate((3.0, 1.0, 2.0)):
        cid = add(store, f"m{i}")
        store.mark_running(cid)
        metrics = {"latency_ms": latency, **({"test_accuracy": 50.0 + i} if i else {})}
        store.complete(cid, Result(accuracy=10.0 * i, metrics=metrics), 1.0, None)
        ids.append(cid)
    assert [c.id for c in store.top(3, by="latency_ms")] == [ids[0], ids[2], ids[1]]
    assert [c.id for c in store.top(3, by="test_accuracy")] == [ids[2], ids[1]]
    assert [c.id for c in store.top(3, by="accuracy")] == ids[::-1]
    assert store.top(3, by="no_such_metric") == []
    assert store.metric_names() == ["reward", "accuracy", "latency_ms", "test_accuracy"]


@pytest.mark.parametrize("bad", [{"Bad Name": 1.0}, {"accuracy": 1.0}, {"x": "1"}, {"x": True}])
def test_result_refuses_bad_metrics(bad: dict) -> None:
    with pytest.raises(ValueError, match="metric"):
        Result(accuracy=1.0, metrics=bad)


# -- schema version 1 ------------------------------------------------------------------

FIXTURES = Path(__file__).parent / "fixtures"


def v1_rows(db: Path) -> dict[int, dict]:
    """The candidates of a version-1 database, read with plain SQL (read-only)."""
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        return {r["id"]: dict(r) for r in conn.execute("SELECT * FROM candidates")}
    finally:
        conn.close()


@pytest.mark.parametrize("run", ["v1_train", "v1_nb201"])
def test_version_1_run_is_migrated(tmp_path: Path, run: str) -> None:
    db = tmp_path / DB_FILENAME
    shutil.copy(FIXTURES / run / DB_FILENAME, db)
    before = v1_rows(db)
    by = "test_accuracy" if run == "v1_nb201" else "reward"
    with RunStore.open(db) as store:
        after = {c.id: c for c in store.candidates()}
        config, agent = store.config, store.agent_state()
        best = store.top(1, by=by)
    assert sorted(after) == sorted(before) and agent is not None
    assert config["evaluations"] == len(before)
    for cid, old in before.items():
        new = after[cid]
        expected = {k: old[k] for k in ("flops", "params", "density", "test_accuracy")}
        assert new.metrics == {k: v for k, v in expected.items() if v is not None}
        assert (new.arch, new.accuracy, new.reward, new.cost_s) == (
            old["arch"],
            old["accuracy"],
            old["reward"],
            old["cost_s"],
        )
    assert best[0].id == max(before, key=lambda i: (before[i][by], -i))
    if run == "v1_train":
        assert all(set(c.metrics) == {"flops", "params", "density"} for c in after.values())
    raw = sqlite3.connect(db)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    raw.close()
    with RunStore.open(db) as again:  # opens as version 2 now, unchanged
        assert again.candidates() == list(after.values())


def test_rank_lists_each_architecture_once(store: RunStore) -> None:
    first = completed(store, "a", 50.0)
    again = completed(store, "a", 70.0)  # the same key evaluated again (no dedupe)
    store.add_reused("arch-a3", "a", 0, 1.0, again, 70.0, None)
    other = completed(store, "b", 60.0)
    completed(store, "a", 40.0)
    ranking = rank(store.candidates())
    assert [c.id for c in ranking] == [again, other]  # "a" once, as its best evaluation
    assert store.top(5) == ranking and store.top(1) == ranking[:1]
    assert first not in {c.id for c in ranking}


# -- crash safety ----------------------------------------------------------------------

WRITER = r"""
import sys
from blockqnn.evaluation import Result
from blockqnn.store import RunStore

with RunStore.open(sys.argv[1]) as store:
    agent = store.agent_state() or {"proposed": 0, "n_done": 0, "failed": 0}

    def changed(**steps):
        for name, step in steps.items():
            agent[name] += step
        return agent

    for c in store.requeue_unfinished():
        store.mark_running(c.id)
        store.complete(c.id, Result(accuracy=50.0), 50.0, changed(n_done=1))
    print("ready", flush=True)
    i = 0
    while True:
        i += 1
        cid = store.add_candidate(f"arch{i}", f"key{i}", i // 64, 0.5, changed(proposed=1))
        store.mark_running(cid, worker="w")
        if i % 5 == 0:
            store.fail(cid, "boom", changed(failed=1))
            continue
        store.complete(cid, Result(accuracy=float(i % 100)), 1.0, changed(n_done=1))
        if i % 3 == 0:
            agent_after = changed(proposed=1, n_done=1)
            store.add_reused(f"iso{i}", f"key{i}", 0, 0.5, cid, 1.0, agent_after)
"""


def run_and_kill(db: Path, delay_s: float) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready = proc.stdout.readline()
        assert ready == "ready\n", proc.stderr.read() if proc.poll() is not None else ready
        time.sleep(delay_s)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        stderr = proc.stderr.read()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, stderr


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_agent_state_matches_candidates_after_sigkill(tmp_path: Path) -> None:
    db = tmp_path / DB_FILENAME
    RunStore.create(db, CONFIG).close()
    rng = random.Random(1234)
    completes = []
    for _ in range(16):  # were a change split over two transactions, ~30% of kills would show it
        run_and_kill(db, rng.uniform(0.005, 0.05))
        raw = sqlite3.connect(db)
        assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        raw.close()
        with RunStore.open(db) as run:
            counts, agent = run.counts(), run.agent_state()
        # every change and the agent state that goes with it were committed together
        assert agent["n_done"] == counts["complete"], (agent["n_done"], counts)
        assert agent["failed"] == counts["failed"], (agent["failed"], counts)
        assert agent["proposed"] == sum(counts.values()), (agent["proposed"], counts)
        completes.append(counts["complete"])
    assert completes[-1] > completes[0] > 0, completes  # the writer made real progress


# -- rejected files --------------------------------------------------------------------


def real_run_bytes(tmp_path: Path) -> bytes:
    db = tmp_path / "real" / DB_FILENAME
    with RunStore.create(db, CONFIG) as run:
        for i in range(200):
            cid = run.add_candidate("x" * 200, f"key{i}", 0, 1.0, {"i": i})
            run.complete(cid, Result(accuracy=1.0, extra={"log": "y" * 200}), 1.0, None)
    return db.read_bytes()


def foreign_sqlite(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE foo (x INTEGER)")
    conn.execute("INSERT INTO foo VALUES (1)")
    conn.commit()
    conn.close()


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing", "does not exist"),
        ("empty", r"is an empty file: the run.s creation was cut short"),
        ("random", r"is not a blockqnn run database \(not an SQLite file\)"),
        ("text", r"is not a blockqnn run database \(not an SQLite file\)"),
        ("foreign", r"is not a blockqnn run database \(application_id 0x0"),
        ("truncated", "is corrupt"),
        ("header-only", "is corrupt"),
    ],
)
def test_open_rejects_bad_files(tmp_path: Path, kind: str, message: str) -> None:
    db = tmp_path / "bad.db"
    if kind == "empty":
        db.write_bytes(b"")
    elif kind == "random":
        db.write_bytes(random.Random(0).randbytes(8192))
    elif kind == "text":
        db.write_text("epsilon,reward\n1.0,65.2\n")
    elif kind == "foreign":
        foreign_sqlite(db)
    elif kind == "truncated":
        data = real_run_bytes(tmp_path)
        db.write_bytes(data[: len(data) // 2])
    elif kind == "header-only":
        db.write_bytes(real_run_bytes(tmp_path)[:100])
    before = db.read_bytes() if db.exists() else None
    with pytest.raises(StoreError, match=message) as info:
        RunStore.open(db)
    assert str(db) in str(info.value)
    assert (db.read_bytes() if db.exists() else None) == before  # never modified


def test_open_rejects_foreign_file_with_our_application_id(tmp_path: Path) -> None:
    db = tmp_path / "bad.db"
    foreign_sqlite(db)
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    conn.close()
    with pytest.raises(StoreError, match=r"not a blockqnn run database \(no meta table\)"):
        RunStore.open(db)


def test_open_rejects_newer_schema(tmp_path: Path) -> None:
    db = tmp_path / DB_FILENAME
    RunStore.create(db, CONFIG).close()
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match=f"newer schema version {SCHEMA_VERSION + 1}") as info:
        RunStore.open(db)
    assert str(db) in str(info.value)


def test_open_leaves_no_stray_files_for_a_missing_run(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        RunStore.open(tmp_path / "nowhere" / DB_FILENAME)
    assert os.listdir(tmp_path) == []


def test_version_1_run_on_read_only_media_is_migrated_in_memory(tmp_path: Path) -> None:
    mount = tmp_path / "media"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "none", str(mount)], capture_output=True).returncode:
        pytest.skip("needs permission to mount a tmpfs (root with CAP_SYS_ADMIN)")
    try:
        shutil.copy(FIXTURES / "v1_nb201" / DB_FILENAME, mount / DB_FILENAME)
        before = v1_rows(mount / DB_FILENAME)
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        with RunStore.open(mount) as store:
            found = {c.id: c.test_accuracy for c in store.candidates()}
            with pytest.raises(StoreError, match="readonly"):
                store.set_meta("status", "touched")
        assert found == {cid: row["test_accuracy"] for cid, row in before.items()}
        assert v1_rows(mount / DB_FILENAME) == before  # the file itself is untouched
    finally:
        subprocess.run(["umount", str(mount)], check=True)


# -- the write-ahead log -----------------------------------------------------------------

UNCLOSED = r"""
import os, sys
from blockqnn.evaluation import Result
from blockqnn.store import RunStore

store = RunStore.create(sys.argv[1], {"space": "nsc"})
for i in range(10):
    cid = store.add_candidate(f"arch{i}", f"key{i}", 0, 1.0, None)
    store.complete(cid, Result(accuracy=50.0), 50.0, None)
os._exit(0)  # as a killed master: no close, no checkpoint
"""


def unclosed_run(db: Path) -> None:
    """A run whose writer died holding 10 results, all in the write-ahead log."""
    subprocess.run([sys.executable, "-c", UNCLOSED, str(db)], check=True)
    assert db.with_name(DB_FILENAME + "-wal").stat().st_size > 0


def test_checkpoints_put_the_run_into_the_database_file(tmp_path: Path) -> None:
    db, alone = tmp_path / DB_FILENAME, tmp_path / "alone" / DB_FILENAME
    wal = db.with_name(DB_FILENAME + "-wal")
    with RunStore.create(db, CONFIG) as run:
        for i in range(50):
            completed(run, f"k{i}", float(i))
        run.checkpoint()  # what the search does every CHECKPOINT_INTERVAL_S
        alone.parent.mkdir()
        shutil.copy(db, alone)  # the file without its log
        completed(run, "last", 99.0)
    assert not wal.exists() or wal.stat().st_size == 0  # emptied at close
    with RunStore.open(alone) as copy:
        assert copy.counts()["complete"] == 50
    with RunStore.open(db) as run:
        assert run.counts()["complete"] == 51


SCHEMA_IN_LOG = r"""
import os, sqlite3, sys

conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA journal_mode = WAL")
conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
os._exit(0)  # killed before any checkpoint: the file has no table, its log has one
"""


def test_a_lost_or_damaged_log_is_named(tmp_path: Path) -> None:
    db = tmp_path / DB_FILENAME
    wal = db.with_name(DB_FILENAME + "-wal")
    subprocess.run([sys.executable, "-c", SCHEMA_IN_LOG, str(db)], check=True)
    data = bytearray(wal.read_bytes())
    data[:32] = bytes(32)  # a damaged header: SQLite ignores the whole log
    wal.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=r"run.db-wal holds nothing committed: the log is damaged"):
        RunStore.open(db)
    assert wal.read_bytes() == bytes(data)  # left for the user to restore or inspect
    wal.unlink()
    with pytest.raises(StoreError, match=r"write-ahead log run.db-wal, which held the data"):
        RunStore.open(db)


def test_a_log_without_its_shm_on_read_only_media_is_not_ignored(tmp_path: Path) -> None:
    mount = tmp_path / "media"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "none", str(mount)], capture_output=True).returncode:
        pytest.skip("needs permission to mount a tmpfs (root with CAP_SYS_ADMIN)")
    try:
        unclosed_run(mount / DB_FILENAME)
        (mount / (DB_FILENAME + "-shm")).unlink()
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        with RunStore.open(mount) as run:  # read from a copy with the log applied
            assert run.counts()["complete"] == 10
        assert (mount / (DB_FILENAME + "-wal")).stat().st_size > 0  # left as it was
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_an_uninitialised_database_is_replaced_by_a_new_run(tmp_path: Path) -> None:
    db = tmp_path / DB_FILENAME
    db.write_bytes(b"")  # a crash between creating the file and filling it
    assert uninitialised(db) and uninitialised(tmp_path)
    with pytest.raises(StoreError, match=r"a new search in .* replaces it"):
        RunStore.open(db)
    RunStore.create(db, CONFIG).close()
    assert not uninitialised(db)
    with RunStore.open(db) as run:
        assert run.config == CONFIG


def test_a_removed_database_stops_its_writer(store: RunStore) -> None:
    completed(store, "a", 1.0)
    store.check_in_place()
    for path in store.path.parent.iterdir():
        path.unlink()  # rm -rf of the run directory's files
    with pytest.raises(StoreError, match="was removed or replaced while this process had it"):
        store.check_in_place()
