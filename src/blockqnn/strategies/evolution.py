"""Regularized (aging) evolution, Real et al. 2019, for any :class:`~blockqnn.space.Space`.

Pure Python: never imports torch.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from typing import Any

from blockqnn.space import Space
from blockqnn.strategies.base import (
    DEFAULT_MAX_REPEATS,
    Result,
    Strategy,
    decode_results,
    encode_results,
    random_architecture,
)


class EvolutionStrategy(Strategy):
    """Tournament selection with aging.

    Until the population holds ``population_size`` results, an ask is a uniform random walk
    of the space. Afterwards an ask draws ``sample_size`` members uniformly (with
    replacement, as the paper's Algorithm 1), takes the one with the best reward (the first
    drawn among equals) and returns ``space.mutate`` of it. Every tell appends to the
    population; once it exceeds ``population_size`` the oldest member is removed.
    """

    kind = "evolution"

    def __init__(
        self,
        space: Space,
        *,
        seed: int,
        budget: int,
        batch: int,
        population_size: int = 20,
        sample_size: int = 5,
        max_repeats: int = DEFAULT_MAX_REPEATS,
    ) -> None:
        super().__init__(space, seed=seed, budget=budget, batch=batch, max_repeats=max_repeats)
        if population_size < 1 or sample_size < 1:
            raise ValueError(
                f"population_size and sample_size must be >= 1, "
                f"got {population_size} and {sample_size}"
            )
        self.population_size = population_size
        self.sample_size = sample_size
        self._population: deque[Result] = deque(maxlen=population_size)

    @property
    def population(self) -> tuple[Result, ...]:
        """The living ``(arch, reward in percent)`` members, oldest first."""
        return tuple(self._population)

    def _ask(self) -> Hashable:
        if len(self._population) < self.population_size:
            return random_architecture(self.space, self._rng)
        return self.space.mutate(self._tournament(), self._rng)

    def _tournament(self) -> Hashable:
        """The best of ``sample_size`` members drawn uniformly with replacement."""
        sample = [self._rng.choice(self._population) for _ in range(self.sample_size)]
        return max(sample, key=lambda member: member[1])[0]

    def _observe(self, arch: Hashable, reward: float) -> None:
        self._population.append((arch, reward))

    @property
    def config(self) -> dict[str, Any]:
        return {
            **super().config,
            "population_size": self.population_size,
            "sample_size": self.sample_size,
        }

    def _state(self) -> dict[str, Any]:
        """``population``: ``[arch text, reward]`` rows, oldest first."""
        return {"population": encode_results(self.space, self._population)}

    def _restore(self, state: dict[str, Any]) -> None:
        population = decode_results(self.space, state["population"])
        self._population = deque(population, maxlen=self.population_size)
