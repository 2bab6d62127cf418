"""A restricted unpickler for dataset pickles (CIFAR batches): data only, never code.

Only the globals needed to rebuild numpy arrays are allowed; any other global (``os.system``,
``builtins.eval``, ...) makes loading fail with :class:`DatasetError`.
"""

from __future__ import annotations

import codecs
import importlib
import io
import pickle
from typing import Any

import numpy as np

from blockqnn.data.errors import DatasetError


def _numpy_core(name: str):
    try:
        return importlib.import_module(f"numpy._core.{name}")
    except ImportError:  # numpy < 1.26
        return importlib.import_module(f"numpy.core.{name}")


_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}
for _core in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_core}.multiarray", "_reconstruct")] = _numpy_core("multiarray")._reconstruct
    _ALLOWED[(f"{_core}.numeric", "_frombuffer")] = _numpy_core("numeric")._frombuffer


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed") from None


def load_pickle(data: bytes, where: str) -> Any:
    """Unpickle ``data`` (Python 2 strings become bytes) allowing only numpy arrays.

    ``where`` names the file in error messages.
    """
    try:
        return _RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as exc:  # any failure to parse untrusted bytes is a bad file
        raise DatasetError(f"{where}: not a safe data pickle ({exc})") from exc
