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
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
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


def _describe(holder: str) -> str:
    """``pid@host`` as words: ``process 123 on host h``."""
    pid, sep, host = holder.partition("@")
    return f"process {pid} on host {host}" if sep else holder
