"""BlockQNN: block-wise neural architecture search with Q-learning.

From Python: ``blockqnn.create_run(dir, dataset=..., evaluations=..., ...)`` or
``blockqnn.open_run(dir)`` give a :class:`~blockqnn.api.Run` to ``search()``, rank
(``best``), tabulate (``to_dataframe``) and build networks from (``model``); see
:mod:`blockqnn.api`. The search core (codes, spaces, agents, store, search loop) is
importable without torch; ``blockqnn.load`` (a trained model) imports torch on first use.
"""

from __future__ import annotations

import logging
from typing import Any

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())


#: The public Python API, imported on first use (``import blockqnn`` stays light).
_API = ("create_run", "open_run", "Run")


def __getattr__(name: str) -> Any:
    """Lazy ``blockqnn.load(path)`` (reads a trained model file; imports torch on first use)
    and the API of :mod:`blockqnn.api` (``create_run``, ``open_run``, ``Run``)."""
    if name == "load":
        from blockqnn.train.checkpoint import load

        return load
    if name in _API:
        from blockqnn import api

        return getattr(api, name)
    raise AttributeError(f"module 'blockqnn' has no attribute {name!r}")
