"""Files: atomic saves, checked loads, and the trained-model file format.

Every file is a ``torch.save`` of a dict of tensors and plain data, tagged with a
``format`` name and a ``version``; it is read back with ``torch.load(weights_only=True)``,
so opening a file never runs code from it. A model file holds the block's codes, the
network configuration, the class names, the normalisation mean/std and the
``state_dict``; :func:`load` rebuilds the network from them.
"""

from __future__ import annotations

import io
import os
import pickle
import re
from collections.abc import Sequence
from typing import Any

import torch

from blockqnn.errors import UserError
from blockqnn.files import atomic_write
from blockqnn.model import Network, NetworkConfig, build

MODEL_FORMAT = "blockqnn-model"
CHECKPOINT_FORMAT = "blockqnn-checkpoint"
VERSION = 1

PathLike = str | os.PathLike[str]


class ModelFileError(ValueError, UserError):
    """A file that is not a usable blockqnn model or checkpoint; the message names it."""


def atomic_save(obj: dict[str, Any], path: PathLike) -> None:
    """``torch.save(obj)`` to ``path`` atomically (see :func:`blockqnn.files.atomic_write`)."""
    atomic_write(path, lambda f: torch.save(obj, f))


def tagged(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` with the ``format``/``version`` tags :func:`load_tagged` checks."""
    return {"format": kind, "version": VERSION, **payload}


def to_bytes(obj: dict[str, Any]) -> bytes:
    """``torch.save(obj)`` into bytes (:func:`load_tagged` reads them back)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def load_tagged(source: PathLike | bytes, kind: str) -> dict[str, Any]:
    """The dict saved in ``source`` (a file, or bytes) by ``atomic_save(tagged(kind, ...))``
    or ``to_bytes(tagged(kind, ...))``.

    Raises FileNotFoundError for a missing file and :class:`ModelFileError` naming the file
    and what is wrong for anything else: not a torch file, truncated or corrupt, holding
    Python objects beyond tensors and plain data (refused, never unpickled), another
    format, or another version.
    """
    path = f"({len(source)} bytes)" if isinstance(source, bytes) else source
    try:
        data = io.BytesIO(source) if isinstance(source, bytes) else source
        obj = torch.load(data, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        raise ModelFileError(f"{path}: not a {kind} file: {_reason(exc)}") from exc
    found = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
    if found != kind:
        raise ModelFileError(f"{path}: not a {kind} file (it holds {found!r})")
    if obj.get("version") != VERSION:
        raise ModelFileError(
            f"{path}: {kind} version {obj.get('version')!r}; this blockqnn reads {VERSION}"
        )
    return obj


def _reason(exc: BaseException) -> str:
    """What is wrong with a file ``torch.load(weights_only=True)`` failed on, in our words.

    torch's own messages run to paragraphs, report a truncated file as ``[Errno 22]`` and
    advise retrying with ``weights_only=False``, which would run the file's code: never
    repeat them.
    """
    if isinstance(exc, pickle.UnpicklingError):
        found = re.search(r"GLOBAL (\S+)", str(exc))
        what = f"a Python object ({found.group(1)})" if found else "pickled Python objects"
        return f"it holds {what} beyond tensors and plain data, so loading was refused"
    if isinstance(exc, PermissionError | IsADirectoryError):
        return exc.strerror or type(exc).__name__
    return "it is truncated or corrupt (not a complete torch file)"


def mismatch(exc: BaseException) -> str:
    """One line saying why a saved record did not fit what was built from it (a missing
    entry, or ``load_state_dict``'s multi-line list of missing and unexpected keys)."""
    if isinstance(exc, KeyError):
        return f"no {exc.args[0]!r} entry"
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return text if len(text) <= 300 else text[:297] + "..."


def save_model(
    path: PathLike,
    network: Network,
    *,
    classes: Sequence[str],
    mean: Sequence[float],
    std: Sequence[float],
    pixel_max: float = 255.0,
) -> None:
    """Write ``network`` (built by :func:`blockqnn.model.build`) as a model file, atomically.

    ``classes`` names the outputs; ``mean``/``std`` are the per-channel statistics its
    inputs were normalised with (``(x / pixel_max - mean) / std``, ``pixel_max`` the
    brightest value of its dataset's own scale: 16 for scikit-learn's digits).
    """
    record = {
        "codes": network.codes,
        "network": network.config.to_dict(),
        "classes": list(classes),
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
        "pixel_max": float(pixel_max),
        "state_dict": {k: v.detach().cpu() for k, v in network.state_dict().items()},
    }
    atomic_save(tagged(MODEL_FORMAT, record), path)


def load(path: PathLike) -> Network:
    """The network saved in a model file, on the CPU in eval mode.

    The returned module has ``codes`` (the block's text) and ``config`` as built, plus
    ``classes``, ``mean``, ``std`` and ``pixel_max`` (255 in files older than it) from the
    file. Raises :class:`ModelFileError` naming
    the file when it is not a readable blockqnn model file.
    """
    record = load_tagged(path, MODEL_FORMAT)
    try:
        network = build(record["codes"], NetworkConfig.from_dict(record["network"]))
        network.load_state_dict(record["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ModelFileError(
            f"{path}: model file does not match its network ({mismatch(exc)})"
        ) from exc
    network.classes = tuple(record["classes"])
    network.mean, network.std = tuple(record["mean"]), tuple(record["std"])
    network.pixel_max = float(record.get("pixel_max", 255.0))
    return network.eval()
