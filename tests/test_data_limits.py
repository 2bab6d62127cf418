"""Hostile or useless datasets: memory stays bounded by the output, not by what a file claims
(huge images, oversized archive members), and a single-class dataset is refused.

Peak memory is measured in a fresh process (``ru_maxrss`` after imports vs after loading).
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path

import pytest
import torch
from PIL import Image

from blockqnn.data import DatasetError, archives, cifar, imagefolder, load_dataset
from blockqnn.data.imagefolder import MAX_IMAGE_BYTES, MAX_PIXELS

MEASURE = r"""
import json, resource, sys
from blockqnn.data import DatasetError, load_dataset

before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    data = load_dataset(sys.argv[1], cache_dir=sys.argv[2], image_size=8)
    outcome = data.describe()
except DatasetError as exc:
    outcome = str(exc)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"mib": (after - before) / 1024, "outcome": outcome}))
"""


def load_measured(spec: str, cache: Path) -> tuple[float, str]:
    """Peak memory (MiB) that loading ``spec`` added in a fresh process, and the outcome
    (the dataset's description or the DatasetError message)."""
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE, spec, str(cache)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    return found["mib"], found["outcome"]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def uniform_png(path: Path, width: int, height: int) -> None:
    """A black RGB PNG of any size, written row by row (never held in memory): it
    compresses to almost nothing, however many pixels it declares."""
    path.parent.mkdir(parents=True, exist_ok=True)
    row, packer = b"\0" * (1 + 3 * width), zlib.compressobj(9)
    with path.open("wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)))
        for _ in range(height):
            if part := packer.compress(row):
                f.write(_chunk(b"IDAT", part))
        f.write(_chunk(b"IDAT", packer.flush()))
        f.write(_chunk(b"IEND", b""))


def small_pngs(root: Path, classes: tuple[str, ...] = ("a", "b"), count: int = 3) -> None:
    for k, name in enumerate(classes):
        for i in range(count):
            (root / name).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8), (80 * k, 0, 0)).save(root / name / f"{i}.png")


class Zeros:
    """A file object of ``size`` zero bytes, read in pieces (tarfile copies from it)."""

    def __init__(self, size: int) -> None:
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return b"\0" * n


def test_image_over_the_pixel_limit_is_refused_before_decoding(tmp_path: Path) -> None:
    root = tmp_path / "huge"
    small_pngs(root)
    uniform_png(root / "a" / "huge.png", 12000, 9000)  # 108 Mpx, under Pillow's bomb limit
    assert (root / "a" / "huge.png").stat().st_size < 1 << 20
    mib, outcome = load_measured(f"imagefolder:{root}", tmp_path / "cache")
    assert "a/huge.png: 12000x9000 pixels is over the 16,777,216-pixel limit" in outcome
    assert mib < 60, f"refusing the image cost {mib:.0f} MiB"


def test_large_images_are_decoded_one_at_a_time(tmp_path: Path) -> None:
    root = tmp_path / "large"
    side = 4000  # 16 Mpx: under the limit; 46 MiB of RGB pixels each
    assert side * side <= MAX_PIXELS
    for name in ("a", "b"):
        for i in range(2):
            uniform_png(root / name / f"{i}.png", side, side)
    mib, outcome = load_measured(f"imagefolder:{root}", tmp_path / "cache")
    assert outcome.endswith("3x8x8, 2 classes"), outcome
    assert mib < 120, f"decoding four 46 MiB images at once: {mib:.0f} MiB"


def test_oversized_archive_member_is_refused_unread(tmp_path: Path) -> None:
    archive = tmp_path / "bomb.tar.gz"
    small_pngs(tmp_path / "src")
    big = tarfile.TarInfo("data/a/big.png")
    big.size = MAX_IMAGE_BYTES + (36 << 20)  # 100 MiB of zeros: ~100 KiB compressed
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src", arcname="data")
        tar.addfile(big, Zeros(big.size))
    assert archive.stat().st_size < 1 << 20
    mib, outcome = load_measured(f"imagefolder:{archive}", tmp_path / "cache")
    assert outcome == (
        f"{archive}: member 'data/a/big.png' is 104,857,600 bytes, over the "
        "67,108,864-byte limit for one file"
    )
    assert mib < 30, f"refusing the member cost {mib:.0f} MiB"


def test_oversized_file_in_a_folder_is_refused_unread(tmp_path: Path) -> None:
    root = tmp_path / "folder"
    small_pngs(root)
    with (root / "b" / "big.png").open("wb") as f:
        f.truncate(MAX_IMAGE_BYTES + 1)  # sparse: no disk space used
    with pytest.raises(DatasetError, match=r"big\.png: is 67,108,865 bytes, over the"):
        load_dataset(f"imagefolder:{root}", cache_dir=tmp_path / "cache")


def test_single_class_dataset_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "cats"
    small_pngs(root, classes=("cat",), count=6)
    with pytest.raises(DatasetError) as caught:
        load_dataset(f"imagefolder:{root}", cache_dir=tmp_path / "cache")
    assert str(caught.value) == (
        f"imagefolder:{root}: the training images hold 1 class(es) (cat); "
        "a classifier needs at least 2"
    )


def test_jpeg_over_the_pixel_limit_decodes_at_a_reduced_scale(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(imagefolder, "MAX_PIXELS", 64 * 64)  # a 256x256 image is "huge"
    root = tmp_path / "photos"
    small_pngs(root)
    Image.new("RGB", (256, 256), (200, 10, 10)).save(root / "a" / "big.jpg", quality=95)
    data = load_dataset(f"imagefolder:{root}", cache_dir=tmp_path / "cache", image_size=8)
    pixels = torch.cat([data.x_train, data.x_val, data.x_test])
    assert (pixels[:, 0] > 180).all(dim=(1, 2)).sum() == 1  # the JPEG, decoded at 1/8 scale
    Image.new("RGB", (256, 256)).save(root / "b" / "big.png")  # PNG has no reduced decode
    with pytest.raises(DatasetError, match=r"b/big\.png: 256x256 pixels is over the 4,096"):
        load_dataset(f"imagefolder:{root}", cache_dir=tmp_path / "cache2", image_size=8)


def test_cifar_archive_over_the_total_limit_is_refused_from_headers(tmp_path, monkeypatch):
    monkeypatch.setattr(cifar, "MAX_TOTAL_BYTES", 3 << 20)
    archive = tmp_path / "c10.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for copy in range(4):  # the same file name in four folders: 4 MiB in all
            member = tarfile.TarInfo(f"copy{copy}/cifar-10-batches-py/data_batch_1")
            member.size = 1 << 20
            tar.addfile(member, Zeros(member.size))
    with pytest.raises(DatasetError) as caught:
        load_dataset(f"cifar10:{archive}", cache_dir=tmp_path / "cache")
    assert str(caught.value) == (
        f"{archive}: the wanted files take over 3,145,728 bytes together "
        "(at member 'copy3/cifar-10-batches-py/data_batch_1')"
    )


def test_an_archive_of_too_many_members_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(archives, "MAX_MEMBERS", 5)
    small_pngs(tmp_path / "src")  # six images and two folders
    archive = tmp_path / "many.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(tmp_path / "src", arcname="data")
    with pytest.raises(DatasetError, match=r"many\.tar: over the limit of 5 members"):
        load_dataset(f"imagefolder:{archive}", cache_dir=tmp_path / "cache")
