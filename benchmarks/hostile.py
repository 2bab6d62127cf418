"""Hostile inputs: each file is built in a temporary folder and loaded by ``load_dataset``
in a fresh process, which reports its peak memory (``ru_maxrss``) and the outcome: the
one-line refusal, or the dataset loaded within bounds. Every case must stay under
``--limit-mib`` (1 GiB) of peak memory for the whole process, imports included, and end
as expected::

    python benchmarks/hostile.py                 # every case
    python benchmarks/hostile.py --case tar_zeros --case idx_wrap

One line per case (name, process peak MiB, MiB added by the load, wall seconds, outcome),
then a JSON line of all results. Exits 1 if a case went over the limit or ended otherwise
than expected.
"""

from __future__ import annotations

import argparse
import io
import json
import pickle
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

LIMIT_MIB = 1024

#: Runs in a fresh process: load argv[1] (image size argv[3], "" for none) with the cache
#: in argv[2]; print the peak memory before and after, and the outcome.
MEASURE = r"""
import json, resource, sys
from blockqnn.data import DatasetError, load_dataset

before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    size = int(sys.argv[3]) if sys.argv[3] else None
    data = load_dataset(sys.argv[1], cache_dir=sys.argv[2], image_size=size)
    outcome, refused = data.describe(), False
except DatasetError as exc:
    outcome, refused = str(exc), True
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"before_kib": before, "peak_kib": after, "outcome": outcome, "refused": refused}))
"""


@dataclass(frozen=True)
class Case:
    """A hostile input: ``build(folder)`` writes it and returns its dataset spec."""

    build: Callable[[Path], str]
    image_size: int | None
    refused: bool  # expected outcome: refused (True) or loaded within bounds (False)
    says: str  # a piece of the expected refusal or description
    about: str


@dataclass(frozen=True)
class Measured:
    case: str
    peak_mib: float
    added_mib: float
    seconds: float
    refused: bool
    outcome: str


# -- builders ---------------------------------------------------------------------------


class _Declares:
    """Pickles as ``numpy.ndarray(shape, dtype)``: an array declared, not held."""

    def __init__(self, shape: tuple[int, ...], dtype: str) -> None:
        self.args = (shape, np.dtype(dtype))

    def __reduce__(self):
        return (np.ndarray, self.args)


def _cifar_folder(folder: Path, batch_1: bytes) -> str:
    """A CIFAR-10 folder whose first training batch is ``batch_1`` (the others are empty)."""
    root = folder / "cifar-10-batches-py"
    root.mkdir(parents=True)
    empty = {b"data": np.zeros((0, 3072), np.uint8), b"labels": []}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (root / name).write_bytes(pickle.dumps(empty, protocol=2))
    (root / "data_batch_1").write_bytes(batch_1)
    return f"cifar10:{folder}"


def cifar_declared_array(folder: Path) -> str:
    """A 200-byte pickle declaring 1,000,000 CIFAR images (3 GB) and their labels."""
    n = 1_000_000
    record = {b"data": _Declares((n, 3072), "u1"), b"labels": _Declares((n,), "i8")}
    return _cifar_folder(folder / "declared", pickle.dumps(record, protocol=2))


def cifar_encoded_copies(folder: Path, copies: int = 1200) -> str:
    """A 1 MB string encoded ``copies`` times (``_codecs.encode``, memo references): 1.2 GB."""
    op = pickle
    text = "a" * (1 << 20)
    body = (
        op.PROTO + b"\x02" + op.GLOBAL + b"_codecs\nencode\n" + op.BINPUT + b"\x00"
        + op.BINUNICODE + struct.pack("<I", len(text)) + text.encode() + op.BINPUT + b"\x01"
        + op.EMPTY_DICT + op.BINUNICODE + struct.pack("<I", 4) + b"data" + op.MARK
        + (op.BINGET + b"\x00" + op.BINGET + b"\x01" + op.SHORT_BINUNICODE + b"\x06latin1"
           + op.TUPLE2 + op.REDUCE) * copies
        + op.LIST + op.SETITEM + op.STOP
    )  # fmt: skip
    return _cifar_folder(folder / "encoded", body)


def _zeros(size: int) -> io.RawIOBase:
    class Zeros(io.RawIOBase):
        left = size

        def readinto(self, buffer) -> int:
            n = min(len(buffer), self.left)
            buffer[:n] = bytes(n)
            self.left -= n
            return n

    return Zeros()


def tar_zeros(folder: Path, members: int = 30, size: int = 60 << 20) -> str:
    """30 "images" of 60 MB of zeros each in a tar.gz (8 MB): 1.8 GB if all are read."""
    archive = folder / "zeros.tar.gz"
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        for i in range(members):
            member = tarfile.TarInfo(f"data/{'ab'[i % 2]}/{i}.png")
            member.size = size
            tar.addfile(member, _zeros(size))
    return f"imagefolder:{archive}"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def uniform_png(width: int, height: int) -> bytes:
    """A black RGB PNG of any size, made row by row: it compresses to almost nothing."""
    row, packer = b"\0" * (1 + 3 * width), zlib.compressobj(9)
    parts = [
        b"\x89PNG\r\n\x1a\n",
        _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)),
    ]
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    return b"".join([*parts, _chunk(b"IDAT", data), _chunk(b"IEND", b"")])


def _tar_of(archive: Path, mode: str, files: dict[str, bytes]) -> None:
    with tarfile.open(archive, mode) as tar:
        for name, data in files.items():
            member = tarfile.TarInfo(name)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))


def png_4096_xz(folder: Path) -> str:
    """40 black PNGs of 4096 x 4096 (each at the per-image pixel limit) in a 1.2 KB tar.xz."""
    archive = folder / "big.tar.xz"
    if not archive.exists():
        png = uniform_png(4096, 4096)
        _tar_of(archive, "w:xz", {f"data/{'ab'[i % 2]}/{i}.png": png for i in range(40)})
    return f"imagefolder:{archive}"


def many_small_pngs(folder: Path, count: int = 60_000) -> str:
    """60,000 black 96 x 96 PNGs in a small tar.gz: 1.7 GB once decoded."""
    archive = folder / "many.tar.gz"
    png = uniform_png(96, 96)
    _tar_of(archive, "w:gz", {f"data/{'ab'[i % 2]}/{i}.png": png for i in range(count)})
    return f"imagefolder:{archive}"


def photos_48mp(folder: Path, count: int = 6) -> str:
    """Six 48-megapixel (8000 x 6000) JPEG photos in a folder of two classes."""
    photo = io.BytesIO()
    Image.linear_gradient("L").resize((8000, 6000)).convert("RGB").save(photo, "JPEG", quality=90)
    for i in range(count):
        path = folder / "photos" / "ab"[i % 2] / f"{i}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(photo.getvalue())
    return f"imagefolder:{folder / 'photos'}"


def idx_wrap(folder: Path) -> str:
    """An MNIST folder whose image header declares (2^22, 2^21, 2^21): 2^64 bytes, 0 in int64."""
    root = folder / "mnist"
    root.mkdir()
    labels = b"\0\0\x08\x01" + struct.pack(">I", 1) + b"\0"
    for stem in ("train", "t10k"):
        images = b"\0\0\x08\x03" + struct.pack(">3I", 1 << 22, 1 << 21, 1 << 21)
        (root / f"{stem}-images-idx3-ubyte").write_bytes(images)
        (root / f"{stem}-labels-idx1-ubyte").write_bytes(labels)
    return f"mnist:{root}"


CASES: dict[str, Case] = {
    "cifar_declared_array": Case(
        cifar_declared_array,
        None,
        True,
        "an array (1000000, 3072) of 3,072,000,000 bytes would take",
        "restricted unpickler: numpy.ndarray(shape, dtype) of 3 GB in a 200-byte pickle",
    ),
    "cifar_encoded_copies": Case(
        cifar_encoded_copies,
        None,
        True,
        "a latin-1 string of 1,048,576 bytes would take",
        "restricted unpickler: a 1 MB string encoded 1,200 times (1.2 GB)",
    ),
    "tar_zeros": Case(
        tar_zeros,
        None,
        True,
        "data/a/0.png: not a readable image",
        "tar.gz: 30 members of 60 MB zeros, 1.8 GB in all",
    ),
    "png_4096_xz": Case(
        png_4096_xz,
        None,
        True,
        "most images are 4096x4096, over 256 pixels a side",
        "tar.xz of 40 PNGs of 4096x4096 without --image-size (2 GB decoded)",
    ),
    "png_4096_xz_full_size": Case(
        png_4096_xz,
        4096,
        True,
        "over the 536,870,912-byte limit",
        "the same with --image-size 4096",
    ),
    "png_4096_xz_resized": Case(
        png_4096_xz,
        32,
        False,
        "3x32x32, 2 classes",
        "the same with --image-size 32: decoded one image at a time",
    ),
    "many_small_pngs": Case(
        many_small_pngs,
        None,
        True,
        "60,000 images of 3x96x96 take 1,658,880,000 bytes",
        "tar.gz of 60,000 PNGs of 96x96 (1.7 GB decoded)",
    ),
    "photos_48mp": Case(
        photos_48mp,
        32,
        False,
        "3x32x32, 2 classes",
        "folder of six 48-megapixel JPEGs with --image-size 32 (reduced-scale decoding)",
    ),
    "idx_wrap": Case(
        idx_wrap,
        None,
        True,
        "idx header declares 18,446,744,073,709,551,632 bytes",
        "idx header (2^22, 2^21, 2^21): np.prod wraps to 0",
    ),
}


def measure(spec: str, image_size: int | None, cache: Path) -> dict:
    """Load ``spec`` in a fresh process: its peak memory and outcome (see ``MEASURE``)."""
    size = "" if image_size is None else str(image_size)
    command = [sys.executable, "-c", MEASURE, spec, str(cache), size]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"{spec}: the loading process failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_case(name: str, folder: Path) -> Measured:
    """Build case ``name`` under ``folder`` and measure loading it."""
    case = CASES[name]
    spec = case.build(folder)
    started = time.perf_counter()
    found = measure(spec, case.image_size, folder / "caches" / name)
    return Measured(
        name,
        round(found["peak_kib"] / 1024, 1),
        round((found["peak_kib"] - found["before_kib"]) / 1024, 1),
        round(time.perf_counter() - started, 1),
        found["refused"],
        found["outcome"],
    )


def as_expected(result: Measured, limit_mib: float = LIMIT_MIB) -> bool:
    """Whether ``result`` stayed under the limit and ended as its case expects."""
    case = CASES[result.case]
    return (
        result.peak_mib < limit_mib
        and result.refused == case.refused
        and case.says in result.outcome
        and "\n" not in result.outcome
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append", choices=sorted(CASES), help="repeatable")
    parser.add_argument("--limit-mib", type=float, default=LIMIT_MIB)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="hostile-") as tmp:
        for name in args.case or list(CASES):
            result = run_case(name, Path(tmp))  # cases sharing a builder share its file
            results.append(result)
            verdict = "ok" if as_expected(result, args.limit_mib) else "FAILED"
            print(
                f"{verdict:6} {name:22} peak {result.peak_mib:7.1f} MiB (+{result.added_mib:.1f}) "
                f"{result.seconds:6.1f} s  {'refused' if result.refused else 'loaded'}: "
                f"{result.outcome}",
                flush=True,
            )
    print(json.dumps([asdict(r) for r in results]))
    return 0 if all(as_expected(r, args.limit_mib) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
