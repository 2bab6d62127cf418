"""BlockQNN: block-wise neural architecture search with Q-learning.

The search core (codes, spaces, agents, store, search loop) is importable without torch;
``blockqnn.load`` (a trained model) imports torch on first use.
"""

from __future__ import annotations

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
