"""Files written whole or not at all: a temporary file beside the target, then ``os.replace``.

A reader (or a crash, or a full disk) never sees a half-written file under the final
name: it sees the old file or the complete new one. A write that fails with an OSError (no
space left, a file size limit, a read-only directory) raises :class:`WriteError`, one line
naming the file, and leaves the old file and no temporary file behind.

Pure Python: never imports torch.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from blockqnn.errors import UserError

PathLike = str | os.PathLike[str]


class WriteError(RuntimeError, UserError):
    """A file that could not be written (the message names it and the system's reason)."""


@contextlib.contextmanager
def replacing(path: PathLike, companions: Sequence[str] = ()) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same directory, same suffix) for the body
    to write; when the body returns, the file is synced and renamed onto ``path``.

    ``companions`` are suffixes of files written beside the temporary one (``".pt"``:
    ``tmp.with_suffix(".pt")``), renamed onto ``path.with_suffix(suffix)`` first. If the
    body raises, nothing is renamed and every temporary file is removed; an OSError
    becomes :class:`WriteError`.
    """
    path = Path(path)
    temporary: list[Path] = []
    try:
        fd, name = tempfile.mkstemp(
            prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent
        )
        os.close(fd)
        tmp = Path(name)
        temporary += [tmp, *(tmp.with_suffix(s) for s in companions)]
        yield tmp
        for suffix in companions:
            _sync(tmp.with_suffix(suffix))
            os.replace(tmp.with_suffix(suffix), path.with_suffix(suffix))
        _sync(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise WriteError(f"{path}: cannot write it ({exc.strerror or exc})") from exc
    finally:
        for leftover in temporary:
            leftover.unlink(missing_ok=True)


def atomic_write(path: PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write`` on a binary file that replaces ``path`` once complete
    (:func:`replacing`)."""
    with replacing(path) as tmp, open(tmp, "wb") as f:
        write(f)


def write_text(path: PathLike, text: str) -> None:
    """Replace ``path`` by ``text`` (UTF-8) once it is completely written."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def _sync(path: Path) -> None:
    """Flush ``path``'s data to the disk, so a rename never exposes an empty file after a
    power loss."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
