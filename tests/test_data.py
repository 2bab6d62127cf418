"""Datasets: digits, image folders (shared CIFAR-10 JPEGs), CIFAR pickles, idx files,
downloads, unsafe archives, splits, resizing and the on-disk cache."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import logging
import pickle
import re
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from blockqnn.data import Dataset, DatasetError, cifar, imagefolder, load_dataset, loader, normalise
from blockqnn.data.archives import Remote
from blockqnn.data.splits import TEST, TRAIN, VAL, plan_splits, stratified_order

from .conftest import shared_file


def _load(spec: str, cache: Path, **options) -> Dataset:
    return load_dataset(spec, cache_dir=cache, **options)


def _assert_well_formed(data: Dataset) -> None:
    for split in ("train", "val", "test"):
        x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        assert x.dtype == torch.uint8 and x.dim() == 4
        assert y.dtype == torch.int64 and y.shape == (len(x),)
        assert x.shape[1:] == (data.channels, data.image_size, data.image_size)
        if len(y):
            assert int(y.min()) >= 0 and int(y.max()) < data.num_classes


def _write_png(path: Path, value: int, size: int, mode: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    colour = value if mode == "L" else (value, 255 - value, 7)
    Image.new(mode, (size, size), colour).save(path)


def _cifar_record(labels: list[int], blue: int) -> dict:
    """An official-layout batch: red plane = 20 * label, green = 100, blue = ``blue``."""
    n = len(labels)
    planes = [np.repeat(np.array(labels, np.uint8)[:, None] * 20, 1024, axis=1)]
    planes += [np.full((n, 1024), 100, np.uint8), np.full((n, 1024), blue, np.uint8)]
    return {"data": np.concatenate(planes, axis=1), "labels": labels}


def _write_cifar10(root: Path, records: dict[str, object] | None = None) -> Path:
    """Five 4-image training batches (blue = batch number) and a 4-image test batch
    (blue = 255) as ``cifar-10-batches-py`` and as ``cifar-10-python.tar.gz``."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {
        f"data_batch_{b}": _cifar_record([(b + i) % 10 for i in range(4)], b) for b in range(1, 6)
    }
    batches["test_batch"] = _cifar_record([0, 1, 2, 3], 255)
    batches.update(records or {})
    for name, record in batches.items():
        (folder / name).write_bytes(pickle.dumps(record, protocol=2))
    archive = root / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    return archive


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _png_bytes(value: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4), (value, value, value)).save(out, format="PNG")
    return out.getvalue()


# ---------------------------------------------------------------- digits and splits


def test_digits_shapes_splits_and_scaling(tmp_path):
    data = _load("digits", tmp_path)
    _assert_well_formed(data)
    assert (data.channels, data.image_size, data.num_classes) == (1, 8, 10)
    sizes = (len(data.y_train), len(data.y_val), len(data.y_test))
    assert sum(sizes) == 1797 and sizes == (1294, 144, 359)
    assert int(data.x_train.max()) == 255 and int(data.x_train.min()) == 0
    assert set(data.y_val.tolist()) == set(range(10))  # stratified: every class held out
    assert data.describe() == "digits: 1294 train / 144 val / 359 test, 1x8x8, 10 classes"


def test_digits_deterministic_per_seed_with_a_fixed_test_set(tmp_path):
    a = _load("digits", tmp_path / "a", seed=3)
    b = _load("digits", tmp_path / "b", seed=3)
    c = _load("digits", tmp_path / "c", seed=4)
    for split in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert torch.equal(getattr(a, split), getattr(b, split))
    assert not torch.equal(a.x_val, c.x_val)
    assert torch.equal(a.x_test, c.x_test)  # the test set never depends on the seed


def test_plan_splits_are_disjoint_complete_and_stratified():
    labels = np.repeat(np.arange(4), [50, 30, 20, 100])
    plan = plan_splits(labels, np.full(200, TRAIN), val_fraction=0.1, subset=None, seed=1)
    parts = [set(plan.train.tolist()), set(plan.val.tolist()), set(plan.test.tolist())]
    assert sum(map(len, parts)) == 200 and set.union(*parts) == set(range(200))
    assert (len(parts[2]), len(parts[1])) == (40, 16)
    assert np.bincount(labels[plan.test]).tolist() == [10, 6, 4, 20]
    prefix = labels[stratified_order(labels, seed=5)[:20]]
    assert np.bincount(prefix, minlength=4).tolist() == [5, 3, 2, 10]


def test_plan_splits_keep_the_sources_own_splits():
    tags = np.array([TRAIN] * 6 + [VAL] * 2 + [TEST] * 2)
    plan = plan_splits(np.arange(10) % 2, tags, val_fraction=0.5, subset=None, seed=0)
    assert plan.val.tolist() == [6, 7] and plan.test.tolist() == [8, 9]
    assert plan.train.tolist() == list(range(6))


def test_subset_is_stratified_and_shrinks_val_and_test(tmp_path):
    data = _load("digits", tmp_path, subset=100)
    assert torch.bincount(data.y_train).tolist() == [10] * 10
    assert (len(data.y_val), len(data.y_test)) == (11, 28)  # x 100/1294 of 144 and 359
    full = _load("digits", tmp_path)
    train_rows = {bytes(row.numpy()) for row in full.x_train}
    assert all(bytes(row.numpy()) in train_rows for row in data.x_train)
    with pytest.raises(DatasetError, match="subset=5000"):
        _load("digits", tmp_path, subset=5000)


def test_image_size_resizes_bilinear(tmp_path):
    small = _load("digits", tmp_path)
    big = _load("digits", tmp_path, image_size=16)
    _assert_well_formed(big)
    assert big.x_train.shape[1:] == (1, 16, 16) and big.image_size == 16
    assert torch.equal(big.y_train, small.y_train)
    brightness = big.x_train.float().mean() - small.x_train.float().mean()
    assert abs(float(brightness)) < 2.0


def test_normalise_uses_training_statistics(tmp_path):
    data = _load("digits", tmp_path)
    unit = normalise(data.x_train)
    assert unit.dtype == torch.float32 and float(unit.min()) >= 0.0 and float(unit.max()) == 1.0
    z = data.normalise(data.x_train)
    assert abs(float(z.mean())) < 1e-4 and abs(float(z.std()) - 1.0) < 1e-3
    assert data.mean[0] == pytest.approx(float(unit.mean()), abs=1e-6)


def test_dataset_rejects_wrong_dtypes():
    x, y = torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(2, dtype=torch.int64)
    with pytest.raises(DatasetError, match="x_train must be uint8"):
        Dataset("bad", x.float(), y, x, y, x, y, ("a",))
    with pytest.raises(DatasetError, match="labels outside"):
        Dataset("bad", x, y + 1, x, y, x, y, ("a",))


@pytest.mark.parametrize("spec", ["nonsense", "imagefolder", "mnist", "digits:/somewhere"])
def test_bad_specs_are_refused(tmp_path, spec):
    with pytest.raises(DatasetError, match=spec):
        _load(spec, tmp_path)


# ---------------------------------------------------------------- image folders


def test_imagefolder_shared_cifar10_subset(tmp_path, monkeypatch):
    archive = shared_file("cifar10-jpg.tar.xz")
    calls = []
    decode = imagefolder.decode_images

    def spy(blobs, names, headers, image_size, where):
        found = dict(blobs)
        calls.append(([found[n] for n in names], list(names)))
        return decode(found.items(), names, headers, image_size, where)

    monkeypatch.setattr(imagefolder, "decode_images", spy)
    data = _load(f"imagefolder:{archive}", tmp_path, subset=200)
    _assert_well_formed(data)
    assert data.num_classes == 10 and data.x_train.shape[1:] == (3, 32, 32)
    assert torch.bincount(data.y_train).tolist() == [20] * 10
    ((blobs, names),) = calls
    assert len(names) == len(data.y_train) + len(data.y_val) + len(data.y_test)
    n_test = len(data.y_test)
    assert all("/train/" in n for n in names[:-n_test])
    for i, (blob, name) in enumerate(zip(blobs[-n_test:], names[-n_test:], strict=True)):
        assert name.split("/")[-3:-1] == ["test", data.classes[int(data.y_test[i])]]
        pixels = np.asarray(Image.open(io.BytesIO(blob)).convert("RGB"))
        assert np.array_equal(pixels, data.x_test[i].permute(1, 2, 0).numpy())


def test_imagefolder_class_layout_gets_splits_and_a_common_size(tmp_path):
    root = tmp_path / "shapes"
    for k, name in enumerate(["circle", "square", "star"]):
        for i in range(10):
            mode, size = ("L", 12) if i % 3 else ("RGB", 10)
            _write_png(root / name / f"{i}.png", 80 * k, size, mode)
    data = _load(f"imagefolder:{root}", tmp_path / "cache")
    _assert_well_formed(data)
    assert data.classes == ("circle", "square", "star") and data.channels == 3
    assert data.image_size == 12  # the most common size
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (22, 2, 6)
    for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test)):
        assert torch.equal(x[:, 0, 5, 5].long(), y * 80)  # each class's colour
    small = _load(f"imagefolder:{root}", tmp_path / "cache", image_size=5)
    assert small.x_train.shape[1:] == (3, 5, 5)


def test_imagefolder_grey_tar_with_split_folders(tmp_path):
    archive = tmp_path / "grey.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for split, count in (("train", 6), ("valid", 2), ("test", 2)):
            for k in range(2):
                for i in range(count):
                    png = io.BytesIO()
                    Image.new("L", (6, 6), 100 * k).save(png, format="PNG")
                    _add_bytes(tar, f"top/{split}/c{k}/{i}.png", png.getvalue())
    data = _load(f"imagefolder:{archive}", tmp_path / "cache")
    assert data.channels == 1 and data.name == "grey"
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (12, 4, 4)
    assert torch.equal(data.x_val[:, 0, 0, 0].long(), data.y_val * 100)


def test_imagefolder_bad_layout_names_the_file(tmp_path):
    _write_png(tmp_path / "data" / "a" / "b" / "c" / "x.png", 0, 4, "L")
    _write_png(tmp_path / "data" / "d" / "y.png", 0, 4, "L")
    with pytest.raises(DatasetError, match="expected <split>/<class>/<image>"):
        _load(f"imagefolder:{tmp_path / 'data'}", tmp_path / "cache")


# ---------------------------------------------------------------- CIFAR pickles


def test_cifar10_archive_and_folder(tmp_path):
    archive = _write_cifar10(tmp_path / "src")
    data = _load(f"cifar10:{archive}", tmp_path / "cache", val_fraction=0.25)
    _assert_well_formed(data)
    assert data.classes == cifar.CIFAR10_CLASSES and data.x_train.shape[1:] == (3, 32, 32)
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (15, 5, 4)
    assert torch.equal(data.x_train[:, 0].flatten(1)[:, 0].long(), data.y_train * 20)
    assert bool((data.x_train[:, 1] == 100).all())
    assert bool((data.x_test[:, 2] == 255).all()) and bool((data.x_train[:, 2] <= 5).all())
    folder = _load(f"cifar10:{tmp_path / 'src'}", tmp_path / "cache", val_fraction=0.25)
    assert torch.equal(folder.x_train, data.x_train) and torch.equal(folder.y_val, data.y_val)


def test_cifar100_bytes_keys_and_meta(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name, n, blue in (("train", 9, 1), ("test", 3, 255)):
        record = _cifar_record([i % 3 for i in range(n)], blue)
        py2 = {b"data": record["data"], b"fine_labels": record["labels"], b"coarse_labels": [0] * n}
        (folder / name).write_bytes(pickle.dumps(py2, protocol=2))
    meta = {b"fine_label_names": [b"apple", b"bee", b"cloud"]}
    (folder / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    data = _load(f"cifar100:{folder}", tmp_path / "cache", val_fraction=1 / 3)
    assert data.classes == ("apple", "bee", "cloud")
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (6, 3, 3)
    assert torch.equal(data.x_test[:, 0, 0, 0].long(), data.y_test * 20)


class _Exploit:
    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        import os

        return (os.mkdir, (str(self.target),))


def test_malicious_pickle_runs_no_code(tmp_path):
    target = tmp_path / "pwned"
    archive = _write_cifar10(tmp_path / "src", {"data_batch_3": _Exploit(target)})
    with pytest.raises(DatasetError, match=r"data_batch_3.*not a safe data pickle"):
        _load(f"cifar10:{archive}", tmp_path / "cache")
    assert not target.exists()


def test_cifar_missing_batch_is_named(tmp_path):
    folder = tmp_path / "src"
    _write_cifar10(folder)
    (folder / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(DatasetError, match="missing data_batch_4"):
        _load(f"cifar10:{folder}", tmp_path / "cache")


@pytest.fixture
def http_folder(tmp_path):
    """A folder served over HTTP on 127.0.0.1 (random port) for the test's duration."""
    served = tmp_path / "www"
    served.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_cifar_download_checks_md5(tmp_path, monkeypatch, http_folder):
    served, url = http_folder
    archive = _write_cifar10(tmp_path / "src")
    (served / "c10.tar.gz").write_bytes(archive.read_bytes())
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()

    monkeypatch.setitem(cifar.REMOTES, "cifar10", Remote(f"{url}/c10.tar.gz", "0" * 32, "c10.tgz"))
    with pytest.raises(DatasetError, match="md5"):
        _load("cifar10", tmp_path / "bad", download=True)
    assert list((tmp_path / "bad" / "downloads").iterdir()) == []

    with pytest.raises(DatasetError, match="download=True"):
        _load("cifar10", tmp_path / "good")
    monkeypatch.setitem(cifar.REMOTES, "cifar10", Remote(f"{url}/c10.tar.gz", md5, "c10.tgz"))
    data = _load("cifar10", tmp_path / "good", download=True)
    assert (tmp_path / "good" / "downloads" / "c10.tgz").read_bytes() == archive.read_bytes()
    assert len(data.y_test) == 4 and data.num_classes == 10


# ---------------------------------------------------------------- unsafe archives


def _evil_tar(path: Path, evil: tarfile.TarInfo) -> None:
    with tarfile.open(path, "w") as tar:
        for i in range(2):
            _add_bytes(tar, f"data/train/a/{i}.png", _png_bytes(10))
        if evil.isfile():
            evil.size = len(_png_bytes(99))
            tar.addfile(evil, io.BytesIO(_png_bytes(99)))
        else:
            tar.addfile(evil)


def _link(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


@pytest.mark.parametrize(
    "evil",
    [
        tarfile.TarInfo("../evil.png"),
        tarfile.TarInfo("data/train/../../../evil.png"),
        tarfile.TarInfo("/tmp/evil.png"),
        _link("data/train/a/link.png", "../../../../evil.png"),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "symlink"],
)
@pytest.mark.parametrize("kind", ["imagefolder", "cifar10"])
def test_unsafe_archive_members_are_refused(tmp_path, evil, kind):
    work = tmp_path / "deep" / "work"
    work.mkdir(parents=True)
    archive = work / "evil.tar"
    _evil_tar(archive, evil)
    pattern = rf"evil\.tar: (unsafe )?member '{re.escape(evil.name)}'"
    with pytest.raises(DatasetError, match=pattern):
        _load(f"{kind}:{archive}", work / "cache")
    written = {p.name for p in tmp_path.rglob("*")}
    assert written == {"deep", "work", "evil.tar"}


# ---------------------------------------------------------------- idx files


def test_mnist_idx_files_plain_and_gzip(tmp_path):
    rng = np.random.default_rng(0)
    train_y, test_y = np.arange(20) % 10, np.arange(10)
    train_x = rng.integers(0, 256, (20, 6, 6))
    files = {
        "train-images-idx3-ubyte.gz": gzip.compress(_idx(train_x)),
        "train-labels-idx1-ubyte": _idx(train_y),
        "t10k-images-idx3-ubyte": _idx(np.broadcast_to(test_y[:, None, None], (10, 6, 6))),
        "t10k-labels-idx1-ubyte.gz": gzip.compress(_idx(test_y)),
    }
    for name, payload in files.items():
        (tmp_path / name).write_bytes(payload)
    data = _load(f"mnist:{tmp_path}", tmp_path / "cache", val_fraction=0.5)
    assert data.x_train.shape[1:] == (1, 6, 6) and data.classes == tuple("0123456789")
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (10, 10, 10)
    assert torch.equal(data.x_test[:, 0, 3, 3].long(), data.y_test)
    rows = {bytes(r.astype(np.uint8)) for r in train_x}
    assert all(bytes(r.numpy()) in rows for r in torch.cat([data.x_train, data.x_val]))


def test_mnist_bad_magic_and_truncated_files(tmp_path):
    labels = np.arange(4) % 10
    images = np.zeros((4, 3, 3))
    for stem in ("train", "t10k"):
        (tmp_path / f"{stem}-images-idx3-ubyte").write_bytes(_idx(images))
        (tmp_path / f"{stem}-labels-idx1-ubyte").write_bytes(_idx(labels))
    bad = tmp_path / "t10k-labels-idx1-ubyte"
    bad.write_bytes(b"\x08\x03" + _idx(labels)[2:])
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte: bad idx magic number"):
        _load(f"mnist:{tmp_path}", tmp_path / "cache")
    bad.write_bytes(_idx(labels)[:-1])
    with pytest.raises(DatasetError, match="needs 12 bytes, file has 11"):
        _load(f"mnist:{tmp_path}", tmp_path / "cache")


# ---------------------------------------------------------------- cache


def test_cache_hit_does_not_decode_again(tmp_path, monkeypatch):
    first = _load("digits", tmp_path)
    (cached,) = (tmp_path / "datasets").glob("digits-*.pt")

    def refuse(*args, **kwargs):
        raise AssertionError("decoded again instead of using the cache")

    monkeypatch.setattr(loader, "build_dataset", refuse)
    second = _load("digits", tmp_path)
    assert torch.equal(first.x_train, second.x_train) and first.classes == second.classes
    assert second.mean == first.mean and second.std == first.std
    with pytest.raises(AssertionError, match="decoded again"):
        _load("digits", tmp_path, seed=1)  # other options, other cache entry
    assert [p.name for p in (tmp_path / "datasets").glob("*.pt")] == [cached.name]


def test_corrupt_cache_is_rebuilt_with_a_warning(tmp_path, caplog):
    first = _load("digits", tmp_path)
    (cached,) = (tmp_path / "datasets").glob("digits-*.pt")
    cached.write_bytes(b"not a torch file")
    with caplog.at_level(logging.WARNING, logger="blockqnn.data.cache"):
        again = _load("digits", tmp_path)
    assert "unreadable dataset cache" in caplog.text
    assert torch.equal(first.x_val, again.x_val)
    assert torch.load(cached, weights_only=True)["name"] == "digits"


def test_changed_source_invalidates_the_cache(tmp_path):
    root = tmp_path / "pics"
    for k in range(2):
        for i in range(5):
            _write_png(root / f"c{k}" / f"{i}.png", 50 * k, 4, "L")
    before = _load(f"imagefolder:{root}", tmp_path / "cache")
    _write_png(root / "c1" / "9.png", 50, 4, "L")
    after = _load(f"imagefolder:{root}", tmp_path / "cache")
    assert len(after.y_train) + len(after.y_val) + len(after.y_test) == 11
    assert len(before.y_train) + len(before.y_val) + len(before.y_test) == 10


def test_an_unreadable_image_is_named_and_decoding_says_what_it_does(tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="blockqnn.data.imagefolder")
    archive = tmp_path / "pets.tar"
    with tarfile.open(archive, "w") as tar:
        for i in range(4):
            _add_bytes(tar, f"{('cat', 'dog')[i % 2]}/{i}.png", _png_bytes(i))
    good = _load(f"imagefolder:{archive}", tmp_path / "cache", image_size=8)
    assert good.x_train.shape[1:] == (3, 8, 8)
    assert f"decoding 4 images of {archive}" in caplog.text
    with tarfile.open(archive, "a") as tar:
        _add_bytes(tar, "cat/bad.png", b"not an image")
    with pytest.raises(DatasetError) as err:
        _load(f"imagefolder:{archive}", tmp_path / "cache", image_size=8)
    assert str(err.value) == (
        f"{archive}:cat/bad.png: not a readable image (an unknown or damaged format)"
    )
