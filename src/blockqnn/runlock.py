"""One writer per run: an exclusive ``flock`` on ``RUN_DIR/lock`` held while a search runs.

The lock file holds ``pid@host`` of its holder, so a refused second writer can say who has
the run. The kernel drops a ``flock`` when its process dies (even by SIGKILL), so a lock
left by a killed search never blocks ``--resume``: the file stays, the lock does not.
Readers (``show``, ``report``) never take it, so they work while a search runs and on
read-only media.

Limitation: ``flock`` is per host on most network file systems; two masters on two
machines sharing the run directory over NFS are not both refused everywhere.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path

from blockqnn.errors import UserError

#: File name of the lock inside a run directory.
LOCK_FILENAME = "lock"


class RunLocked(RuntimeError, UserError):
    """Another live process holds the run; the message names its pid and host."""


class RunLock:
    """The exclusive lock of the run directory ``run_dir`` (which must exist).

    Use ``with RunLock(run_dir):`` or :meth:`acquire` / :meth:`release`. :meth:`acquire`
    never waits: it raises :class:`RunLocked` at once when another process holds the lock,
    and OSError when the lock file cannot be created (read-only media, not a directory).
    """

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.path = Path(run_dir) / LOCK_FILENAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock and write ``pid@host`` into the lock file."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _flock(fd, fcntl.LOCK_EX)
        except BlockingIOError:
            holder = os.read(fd, 256).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise RunLocked(
                f"{self.path.parent} is in use by {_describe(holder)}; "
                "wait for it to end (or stop it) before writing to this run"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}@{socket.gethostname()}\n".encode())
        self._fd = fd

    def in_place(self) -> bool:
        """Whether the lock file this lock holds is still the one at :attr:`path` (False
        once the run directory was deleted, or the lock released)."""
        if self._fd is None:
            return False
        try:
            here, held = os.stat(self.path), os.fstat(self._fd)
        except OSError:
            return False
        return (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino)

    def release(self) -> None:
        """Drop the lock (the file stays, holding the last holder's name). Idempotent."""
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def live_holder(run_dir: str | os.PathLike[str]) -> str | None:
    """``pid@host`` of the live process that holds the lock of ``run_dir``, or None when
    none does (no lock file, or its last holder ended, even by SIGKILL). Tests the lock
    with a shared ``flock`` held for an instant (a writer's :meth:`RunLock.acquire`
    retries over such an instant)."""
    try:
        fd = os.open(Path(run_dir) / LOCK_FILENAME, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return os.read(fd, 256).decode(errors="replace").strip() or "another process"
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


#: The status a reader shows for a run stored as running that no live search holds.
STOPPED = "stopped (no search holds the lock)"


def shown_status(run_dir: str | os.PathLike[str], stored: str | None) -> str | None:
    """A run's status as readers (``show``, the report) show it: the stored status, but
    :data:`STOPPED` for one stored as ``running`` whose search died (killed, the machine
    lost) without saying so."""
    if stored == "running" and live_holder(run_dir) is None:
        return STOPPED
    return stored


def _flock(fd: int, operation: int) -> None:
    """``flock`` without waiting, retried for :data:`_RETRY_S` (BlockingIOError after it),
    so a reader's instant test of the lock (:func:`live_holder`) never refuses a writer."""
    deadline = time.monotonic() + _RETRY_S
    while True:
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


#: Seconds :meth:`RunLock.acquire` retries a lock held by another process.
_RETRY_S = 0.2


def _describe(holder: str) -> str:
    """``pid@host`` as words: ``process 123 on host h``."""
    pid, sep, host = holder.partition("@")
    return f"process {pid} on host {host}" if sep else holder
