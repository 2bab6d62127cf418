"""Tar archives read without extraction and refused when unsafe; checked downloads.

Nothing here writes an archive member to disk: members are streamed into memory, one at a
time, and bounded in size, in number and in total before they are read. Every
member is still checked as if it were about to be extracted, so an archive holding an
absolute path, a ``..`` component, a link that points outside, or a device node is refused
with :class:`DatasetError` naming the archive and the member.
"""

from __future__ import annotations

import hashlib
import logging
import lzma
import os
import posixpath
import tarfile
import tempfile
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from blockqnn.data.errors import DatasetError

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20
#: Most members an archive may hold (each costs memory while the stream is read).
MAX_MEMBERS = 1 << 20
_READ_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError)


@dataclass(frozen=True)
class Remote:
    """A downloadable file: where it is, its published md5, the name to save it as."""

    url: str
    md5: str
    filename: str


def check_member(archive: Path, member: tarfile.TarInfo) -> None:
    """Raise DatasetError if extracting ``member`` could write outside the target folder."""
    name = member.name
    if _escapes(name):
        raise DatasetError(f"{archive}: unsafe member {name!r} (absolute path or '..')")
    if member.issym() or member.islnk():
        base = posixpath.dirname(name) if member.issym() else ""
        if _escapes(member.linkname) or _escapes(posixpath.join(base, member.linkname)):
            raise DatasetError(
                f"{archive}: member {name!r} links outside the archive ({member.linkname!r})"
            )
    elif not (member.isfile() or member.isdir()):
        raise DatasetError(f"{archive}: member {name!r} is not a file, folder or link")


def _escapes(name: str) -> bool:
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return True
    return posixpath.normpath(name).split("/")[0] == ".."


@contextmanager
def _open_stream(archive: Path) -> Iterator[tarfile.TarFile]:
    try:
        with tarfile.open(archive, mode="r|*") as tar:
            yield tar
    except _READ_ERRORS as exc:
        raise DatasetError(f"{archive}: not a readable tar archive ({exc})") from exc


def iter_files(
    archive: Path, wanted: Callable[[str], bool], max_member: int, max_total: int | None = None
) -> Iterator[tuple[str, bytes]]:
    """``(name, bytes)`` of each regular file ``wanted`` accepts, in archive order, read one
    at a time as the stream reaches it (nothing is kept between items).

    Every member is checked (see :func:`check_member`), wanted or not; an archive of more
    than ``MAX_MEMBERS`` members is refused; a wanted file over ``max_member`` bytes, or
    one that takes the wanted files together over ``max_total``, is refused from its
    header, before anything of it is read.
    """
    total = 0
    with _open_stream(archive) as tar:
        for count, member in enumerate(tar, 1):
            if count > MAX_MEMBERS:
                raise DatasetError(f"{archive}: over the limit of {MAX_MEMBERS:,} members")
            check_member(archive, member)
            if not (member.isfile() and wanted(member.name)):
                continue
            _check_size(archive, member, max_member)
            total += member.size
            if max_total is not None and total > max_total:
                raise DatasetError(
                    f"{archive}: the wanted files take over {max_total:,} bytes together "
                    f"(at member {member.name!r})"
                )
            yield member.name, _read_member(tar, member)


def read_files(
    archive: Path, wanted: Callable[[str], bool], max_member: int, max_total: int
) -> dict[str, bytes]:
    """The bytes of every regular file whose name ``wanted`` accepts, in one streaming
    pass, with the limits of :func:`iter_files`."""
    return dict(iter_files(archive, wanted, max_member, max_total))


def read_file(path: Path, max_bytes: int) -> bytes:
    """The bytes of the file at ``path``, refused with DatasetError if over ``max_bytes``
    (checked before reading, and the read itself is bounded)."""
    try:
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            data = f.read(max_bytes + 1) if size <= max_bytes else b""
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from exc
    if size > max_bytes or len(data) > max_bytes:
        raise DatasetError(f"{path}: {_too_big(max(size, len(data)), max_bytes)}")
    return data


def check_file_size(path: Path, max_bytes: int) -> None:
    """DatasetError naming ``path`` if it cannot be read or is over ``max_bytes``."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from exc
    if size > max_bytes:
        raise DatasetError(f"{path}: {_too_big(size, max_bytes)}")


def _check_size(archive: Path, member: tarfile.TarInfo, max_member: int) -> None:
    if member.size > max_member:
        raise DatasetError(f"{archive}: member {member.name!r} {_too_big(member.size, max_member)}")


def _too_big(size: int, limit: int) -> str:
    return f"is {size:,} bytes, over the {limit:,}-byte limit for one file"


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    """A member's bytes; the read is bounded by its (already checked) header size."""
    return tar.extractfile(member).read(member.size)


def download(remote: Remote, folder: Path) -> Path:
    """Fetch ``remote`` into ``folder`` and return its path, verifying the md5.

    The file is written to a temporary name and renamed only once the checksum matches, so
    a failed or corrupt download leaves no file behind (DatasetError is raised).
    """
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / remote.filename
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{remote.filename}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _fetch(remote.url, out)
        if digest != remote.md5.lower():
            raise DatasetError(
                f"{remote.url}: md5 {digest} does not match the published {remote.md5}"
            )
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)
    logger.info("downloaded %s to %s", remote.url, dest)
    return dest


def _fetch(url: str, out) -> str:
    logger.info("downloading %s", url)
    md5 = hashlib.md5(usedforsecurity=False)
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            while chunk := response.read(_CHUNK):
                md5.update(chunk)
                out.write(chunk)
    except OSError as exc:
        raise DatasetError(f"{url}: download failed ({exc})") from exc
    return md5.hexdigest()
