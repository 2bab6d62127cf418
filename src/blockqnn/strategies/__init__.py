"""Search strategies behind one ask/tell interface, and a registry to build them by name.

See :class:`Strategy` for the contract. Pure Python: never imports torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from blockqnn.space import Space
from blockqnn.strategies.base import Strategy, random_architecture
from blockqnn.strategies.evolution import EvolutionStrategy
from blockqnn.strategies.qlearning import QLearningStrategy, random_search
from blockqnn.strategies.schedule import EpsilonSchedule, iterations_for

#: Strategy factories by name; each takes ``(space, *, seed, budget, batch, **options)``.
STRATEGIES: dict[str, Callable[..., Strategy]] = {
    "qlearning": QLearningStrategy,
    "random": random_search,
    "evolution": EvolutionStrategy,
}


def make_strategy(
    name: str, space: Space, *, seed: int, budget: int, batch: int, **options: Any
) -> Strategy:
    """Build the strategy registered as ``name`` (ValueError for unknown names).

    ``options`` go to the strategy's constructor (e.g. ``alpha``, ``shaped``, ``replay``,
    ``schedule`` for Q-learning; ``population_size``, ``sample_size`` for evolution).
    """
    try:
        factory = STRATEGIES[name]
    except KeyError:
        known = ", ".join(sorted(STRATEGIES))
        raise ValueError(f"unknown strategy {name!r}; known strategies: {known}") from None
    return factory(space, seed=seed, budget=budget, batch=batch, **options)


__all__ = [
    "STRATEGIES",
    "EpsilonSchedule",
    "EvolutionStrategy",
    "QLearningStrategy",
    "Strategy",
    "iterations_for",
    "make_strategy",
    "random_architecture",
    "random_search",
]
