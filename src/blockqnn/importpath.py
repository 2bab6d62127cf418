"""Objects named by an import path ``module:qualname``: how a run stores the Python code a
user plugs in (a training function), so that workers, ``--resume`` and other commands find
it again. Pure Python."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from blockqnn.errors import UserError


class ImportPathError(ValueError, UserError):
    """An object that cannot be named or found by an import path; the message says why."""


def import_path(obj: Any) -> str:
    """``module:qualname`` of a module-level function or class (ImportPathError for a
    lambda, a nested function or an object without a module). An object defined in the
    script being run (``__main__``) is named by the script's module name, so that worker
    processes, which have the script's folder on their path, import it from the file."""
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        raise ImportPathError(
            f"{obj!r} has no import path: define it at the top level of a module "
            "(a lambda or a nested function cannot be found by worker processes)"
        )
    if module == "__main__":
        main = getattr(sys.modules["__main__"], "__file__", None)
        if main is None:
            raise ImportPathError(
                f"{qualname} is defined interactively: define it in a module worker "
                "processes can import, or give its 'module:qualname'"
            )
        module = Path(main).stem
    return f"{module}:{qualname}"


def resolve(path: str) -> Any:
    """The object ``module:qualname`` names (ImportPathError naming the path otherwise)."""
    module, sep, qualname = path.partition(":")
    if not sep or not module or not qualname:
        raise ImportPathError(f"{path!r}: expected an import path 'module:qualname'")
    try:
        obj = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ImportPathError(f"{path}: cannot import it ({exc})") from None
    return obj
