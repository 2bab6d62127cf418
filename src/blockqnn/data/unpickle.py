"""A restricted unpickler for dataset pickles (CIFAR batches): data only, never code.

Only the globals needed to rebuild numpy arrays are allowed; any other global (``os.system``,
``builtins.eval``, ...) makes loading fail with :class:`DatasetError`.

Memory is bounded by the file, not by what it declares: every array the pickle asks for
(``numpy.ndarray(shape, dtype)``, ``_reconstruct``) and every string it encodes is charged,
before it is allocated, against the pickle's own size, since a genuine pickle holds its
arrays' bytes; a pickle that asks for more is refused, as are object arrays and encodings
other than latin-1 (a pickle of numpy arrays needs neither).
"""

from __future__ import annotations

import codecs
import importlib
import io
import math
import pickle
from typing import Any

import numpy as np

from blockqnn.data.errors import DatasetError

#: Bytes a pickle may allocate beyond its own size (small headers and empty arrays).
SLACK_BYTES = 1 << 16
_LATIN1 = frozenset({"latin1", "latin-1", "latin_1", "iso-8859-1", "iso8859-1"})


def _numpy_core(name: str):
    try:
        return importlib.import_module(f"numpy._core.{name}")
    except ImportError:  # numpy < 1.26
        return importlib.import_module(f"numpy.core.{name}")


class _Budget:
    """Bytes the pickle may still allocate; :meth:`charge` refuses going over."""

    def __init__(self, file_bytes: int) -> None:
        self.file_bytes = file_bytes
        self.left = file_bytes + SLACK_BYTES

    def charge(self, nbytes: int, what: str) -> None:
        if nbytes > self.left:
            built = self.file_bytes + SLACK_BYTES - self.left + nbytes
            raise pickle.UnpicklingError(
                f"{what} of {nbytes:,} bytes would take what the pickle builds to {built:,} "
                f"bytes, more than its {self.file_bytes:,}-byte file can hold"
            )
        self.left -= nbytes

    def array(self, shape: Any, dtype: Any) -> None:
        """Charge an array of ``shape`` and ``dtype`` (Python ints: no overflow)."""
        dims = (shape,) if isinstance(shape, int) else shape
        if not isinstance(dims, tuple) or not all(isinstance(d, int) and d >= 0 for d in dims):
            raise pickle.UnpicklingError(f"array shape {shape!r} is not a tuple of sizes")
        self.charge(math.prod(dims) * _dtype(dtype).itemsize, f"an array {dims}")


def _dtype(*args: Any) -> np.dtype:
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise pickle.UnpicklingError(f"dtype {dtype} holds Python objects")
    return dtype


def _globals(budget: _Budget) -> dict[tuple[str, str], Any]:
    """The allowed globals, each charging ``budget`` before it allocates."""

    def ndarray(shape: Any, dtype: Any = float, *args: Any) -> np.ndarray:
        budget.array(shape, dtype)  # a view of a buffer too: strides 0 make any size
        return np.ndarray(shape, _dtype(dtype), *args)

    def reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
        if subtype not in (ndarray, np.ndarray):
            raise pickle.UnpicklingError(f"cannot rebuild {subtype!r}")
        budget.array(shape, dtype)
        return multiarray._reconstruct(np.ndarray, shape, _dtype(dtype))

    def encode(text: Any, encoding: str = "utf-8") -> bytes:
        if not isinstance(text, str) or encoding.lower() not in _LATIN1:
            raise pickle.UnpicklingError(f"encoding {encoding!r} of {type(text).__name__}")
        budget.charge(len(text), "a latin-1 string")
        return codecs.encode(text, "latin1")

    multiarray = _numpy_core("multiarray")
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): ndarray,
        ("numpy", "dtype"): _dtype,
        ("_codecs", "encode"): encode,
    }
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        # a view of a buffer the pickle holds (reshape checks the size)
        allowed[(f"{core}.numeric", "_frombuffer")] = _numpy_core("numeric")._frombuffer
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data), encoding="bytes")
        self._allowed = _globals(_Budget(len(data)))

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed") from None


def load_pickle(data: bytes, where: str) -> Any:
    """Unpickle ``data`` (Python 2 strings become bytes) allowing only numpy arrays.

    ``where`` names the file in error messages. Raises DatasetError for anything else, and
    for a pickle whose arrays would take more bytes than ``data`` holds (plus
    ``SLACK_BYTES``), before allocating them.
    """
    try:
        return _RestrictedUnpickler(data).load()
    except Exception as exc:  # any failure to parse untrusted bytes is a bad file
        raise DatasetError(f"{where}: not a safe data pickle ({exc})") from exc
