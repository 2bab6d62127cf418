"""BlockQNN: block-wise neural architecture search with Q-learning.

The search core (codes, spaces, agents, store, search loop) is importable without torch;
``blockqnn.load`` (a trained model) imports torch on first use.
"""

from __future__ import annotations

import logging
from typing import Any

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())


def __getattr__(name: str) -> Any:
    """Lazy ``blockqnn.load(path)``: reads a trained model file (imports torch on first use)."""
    if name == "load":
        from blockqnn.train.checkpoint import load

        return load
    raise AttributeError(f"module 'blockqnn' has no attribute {name!r}")
