"""Hostile inputs (``benchmarks/hostile.py``): every case built, loaded in a fresh process,
refused in one line or loaded within bounds, under 1 GiB of peak memory; and the refusals
that need no big file, checked directly."""

from __future__ import annotations

import pickle
import struct

import numpy as np
import pytest

from blockqnn.data import DatasetError
from blockqnn.data.mnist import parse_idx
from blockqnn.data.unpickle import load_pickle

from .conftest import load_benchmark

hostile = load_benchmark("hostile")


@pytest.mark.parametrize("name", list(hostile.CASES))
def test_hostile_case_is_refused_or_bounded(name, tmp_path):
    result = hostile.run_case(name, tmp_path)
    case = hostile.CASES[name]
    assert result.refused == case.refused, result.outcome
    assert case.says in result.outcome and "\n" not in result.outcome
    assert result.peak_mib < hostile.LIMIT_MIB, f"{name}: {result.peak_mib} MiB"
    assert hostile.as_expected(result)


def test_a_pickle_may_build_no_more_than_its_file_holds():
    genuine = {b"data": np.arange(3072 * 4, dtype=np.uint8).reshape(4, 3072), b"labels": [1] * 4}
    for protocol in (2, 4, 5):
        loaded = load_pickle(pickle.dumps(genuine, protocol=protocol), "batch")
        assert np.array_equal(loaded[b"data"], genuine[b"data"])
    declared = pickle.dumps([hostile._Declares((2, 1 << 16), "u1")], protocol=2)
    with pytest.raises(DatasetError, match=r"batch: not a safe data pickle \(an array \(2, 65536"):
        load_pickle(declared, "batch")
    assert load_pickle(pickle.dumps([hostile._Declares((100,), "u1")]), "batch")[0].shape == (100,)


class _View:
    """Pickles as ``numpy.ndarray(shape, "u1", buffer, 0, strides 0)``: one byte seen
    ``shape`` times, which a copy makes real."""

    def __reduce__(self):
        return (np.ndarray, ((1 << 40,), np.dtype("u1"), b"x", 0, (0,)))


def test_a_view_of_a_buffer_is_charged_at_its_declared_size():
    with pytest.raises(DatasetError, match=r"an array \(1099511627776,\) of 1,099,511,627,776"):
        load_pickle(pickle.dumps(_View(), protocol=2), "f")


def test_object_arrays_are_refused():
    data = pickle.dumps(np.array([None, 1], dtype=object), protocol=2)
    with pytest.raises(DatasetError, match="dtype object holds Python objects"):
        load_pickle(data, "f")


def test_only_latin1_strings_may_be_encoded():
    body = (
        pickle.PROTO + b"\x02" + pickle.GLOBAL + b"_codecs\nencode\n"
        + pickle.SHORT_BINUNICODE + b"\x02ab" + pickle.SHORT_BINUNICODE + b"\x03hex"
        + pickle.TUPLE2 + pickle.REDUCE + pickle.STOP
    )  # fmt: skip
    with pytest.raises(DatasetError, match="encoding 'hex' of str"):
        load_pickle(body, "f")


def test_an_idx_header_whose_size_wraps_around_is_refused():
    header = b"\0\0\x08\x03" + struct.pack(">3I", 1 << 22, 1 << 21, 1 << 21)
    with pytest.raises(DatasetError, match=r"idx header \(4194304, 2097152, 2097152\) needs "
                       r"18,446,744,073,709,551,632 bytes, file has 16"):  # fmt: skip
        parse_idx(header, "f")
