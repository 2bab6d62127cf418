"""The run directory: checked before a run is made, created and locked while one is made,
and removed again when making it fails before its database exists."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from blockqnn.errors import UserError
from blockqnn.runlock import RunLock
from blockqnn.search import DB_NAME
from blockqnn.store import uninitialised


class RunDirError(UserError):
    """A run directory that cannot be used as asked; the message names it."""


def check_new_run_dir(run_dir: Path) -> None:
    """RunDirError unless a new run can be made in ``run_dir`` (checked first, before the
    slow checks): not a file, no run in it yet, its nearest existing ancestor a writable
    directory, a name the file system accepts."""
    try:
        if run_dir.exists() and not run_dir.is_dir():
            raise RunDirError(f"--run-dir {run_dir} is a file, not a directory")
        if (run_dir / DB_NAME).exists() and not uninitialised(run_dir / DB_NAME):
            raise RunDirError(
                f"{run_dir} already holds a run; continue it with --resume or use another --run-dir"
            )
        existing = next(p for p in (run_dir, *run_dir.parents) if p.exists())
    except OSError as exc:
        raise RunDirError(_cannot_create(run_dir, exc)) from None
    if not existing.is_dir():
        raise RunDirError(f"--run-dir {run_dir}: cannot create it ({existing} is not a directory)")
    if not os.access(existing, os.W_OK):
        raise RunDirError(f"--run-dir {run_dir}: cannot create it ({existing} is not writable)")


def _cannot_create(run_dir: Path, exc: OSError) -> str:
    return f"--run-dir {run_dir}: cannot create it ({exc.strerror or exc})"


def holds_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` has a run database (False for any path that cannot have one)."""
    try:
        return (run_dir / DB_NAME).is_file()
    except OSError:  # e.g. a name too long
        return False


def check_run(run_dir: Path) -> None:
    """RunDirError unless ``run_dir`` holds a run to continue."""
    if not holds_run(run_dir):
        raise RunDirError(f"{run_dir} holds no run to resume (no {DB_NAME})")


def _make(run_dir: Path) -> Path | None:
    """Create ``run_dir`` (and missing parents) for a new run; the topmost directory
    created, None if it existed (RunDirError when it cannot be used)."""
    check_new_run_dir(run_dir)
    created = next((p for p in (*reversed(run_dir.parents), run_dir) if not p.exists()), None)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(_cannot_create(run_dir, exc)) from None
    return created


@contextlib.contextmanager
def new_run_dir(run_dir: Path, leftovers: tuple[str, ...] = ()) -> Iterator[None]:
    """Make the run directory and hold its lock; if the body fails before the run's
    database exists, remove the directories made, or in a directory that existed the files
    named in ``leftovers`` (never when another process holds the lock: the directory is
    then its run's; nor when the directory was deleted meanwhile: it may be another's)."""
    created = _make(run_dir)
    with locked(run_dir) as lock:
        try:
            yield
        except BaseException:
            if lock.in_place() and not (run_dir / DB_NAME).exists():
                if created is not None:
                    shutil.rmtree(created, ignore_errors=True)
                for name in leftovers:
                    (run_dir / name).unlink(missing_ok=True)
            raise


@contextlib.contextmanager
def locked(run_dir: Path) -> Iterator[RunLock]:
    """Hold the run's lock (RunLocked when another process has it)."""
    lock = RunLock(run_dir)
    try:
        lock.acquire()
    except OSError as exc:
        raise RunDirError(f"--run-dir {run_dir}: cannot lock it ({exc.strerror or exc})") from None
    try:
        yield lock
    finally:
        lock.release()
