"""The ask/tell contract every search strategy implements, and what strategies share.

Pure Python: never imports torch.
"""

from __future__ import annotations

import logging
import math
import random
from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterable
from typing import Any, ClassVar

from blockqnn.space import Space, random_walk

logger = logging.getLogger(__name__)

#: Duplicate answers in a row after which a strategy explores (see :class:`Strategy`).
DEFAULT_MAX_REPEATS = 50

#: One finished evaluation: an architecture and its reward in percent.
Result = tuple[Hashable, float]


class Strategy(ABC):
    """Proposes architectures of a :class:`~blockqnn.space.Space` and learns from rewards.

    Contract:

    - :meth:`ask` returns the next architecture to evaluate. Several asks may come before
      the matching tells (asynchronous search: several candidates in flight). An ask
      changes only the random state, never what the strategy has learnt.
    - :meth:`tell` reports one finished evaluation with its reward in **percent** (e.g.
      65.3). Results may arrive in any order and need not come from an ask. Failed
      candidates are simply never told.
    - A proposal the caller already knows (isomorphic to an evaluated architecture) is
      answered at once with ``tell(arch, stored_reward, duplicate=True)``: the strategy
      learns from it, but it is not an evaluation (it does not advance :attr:`tells`,
      :attr:`iteration` or the budget). After ``max_repeats`` such answers in a row the
      strategy explores: each ask is a random walk of the space until an ask is not
      answered as a duplicate. :attr:`repeats` counts the answers in a row, so a caller
      can tell an exhausted space (``repeats >= 2 * max_repeats``) and stop.
    - :attr:`iteration` is ``tells // batch``; :attr:`epsilon` is the exploration rate the
      next ask uses (None where it does not apply).
    - :meth:`state_dict` is JSON-serialisable (str keys, lists, numbers, str, None).
      :meth:`load_state_dict` on a strategy built with the same arguments makes it
      continue exactly as the original would, random state included.

    A strategy is not thread-safe: one caller (the search loop) owns it.
    """

    #: The name recorded in :meth:`state_dict`.
    kind: ClassVar[str]
    #: Keys of :meth:`state_dict` whose values are append-only logs: lists whose items,
    #: once in a state, are never changed or removed in a later one (a run store saves
    #: only their new items).
    logs: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        space: Space,
        *,
        seed: int,
        budget: int,
        batch: int,
        max_repeats: int = DEFAULT_MAX_REPEATS,
    ) -> None:
        if budget < 1 or batch < 1:
            raise ValueError(f"budget and batch must be >= 1, got budget={budget}, batch={batch}")
        if isinstance(max_repeats, bool) or not isinstance(max_repeats, int) or max_repeats < 1:
            raise ValueError(f"max_repeats must be an integer >= 1, got {max_repeats!r}")
        self.space = space
        self.seed = seed
        self.budget = budget
        self.batch = batch
        self.max_repeats = max_repeats
        self._rng = random.Random(seed)
        self._tells = 0
        self._repeats = 0  # duplicate answers in a row
        self._answered = True  # the last ask was answered as a duplicate (or none yet)

    def ask(self) -> Hashable:
        """The next architecture of :attr:`space` to evaluate (a random walk after
        ``max_repeats`` duplicate answers in a row)."""
        if not self._answered:
            self._repeats = 0
        self._answered = False
        if self._repeats >= self.max_repeats:
            return random_architecture(self.space, self._rng)
        return self._ask()

    @abstractmethod
    def _ask(self) -> Hashable:
        """The strategy's own next proposal."""

    def tell(
        self, arch: Hashable, reward: float, *, duplicate: bool = False, late: bool = False
    ) -> None:
        """Learn from one finished evaluation of ``arch`` (an architecture of the space,
        as :meth:`ask` or ``space.parse`` return it); ``reward`` in percent.

        ``duplicate=True`` answers the last ask with the stored reward of an isomorphic,
        already evaluated architecture (see the class contract). With ``late=True`` too it
        answers an earlier ask that waited for an isomorphic architecture in flight: the
        strategy learns as from a duplicate answer, but it is no repeat (that ask was not
        answered at once)."""
        reward = float(reward)
        if not math.isfinite(reward):
            raise ValueError(f"reward must be finite, got {reward}")
        if duplicate:
            if not late:
                self._repeats += 1
                self._answered = True
            self._observe_duplicate(arch, reward)
            return
        self._observe(arch, reward)
        self._tells += 1
        if self._tells % self.batch == 0:
            self._end_iteration()

    @abstractmethod
    def _observe(self, arch: Hashable, reward: float) -> None:
        """Learn from one result (reward in percent)."""

    def _observe_duplicate(self, arch: Hashable, reward: float) -> None:
        """Learn from a duplicate answer (by default as from a result)."""
        self._observe(arch, reward)

    @property
    def repeats(self) -> int:
        """Duplicate answers in a row (0 once an ask is not answered as a duplicate)."""
        return self._repeats if self._answered else 0

    def _end_iteration(self) -> None:
        """Hook run after every ``batch`` tells (just logs by default)."""
        logger.debug("%s: iteration %d done, %d results", self.kind, self.iteration, self._tells)

    @property
    def tells(self) -> int:
        """The number of results told so far."""
        return self._tells

    @property
    def iteration(self) -> int:
        """Completed iterations: ``tells // batch``."""
        return self._tells // self.batch

    @property
    def epsilon(self) -> float | None:
        """The exploration rate the next ask uses; None where it does not apply."""
        return None

    @property
    def config(self) -> dict[str, Any]:
        """The construction arguments, JSON-able; :meth:`load_state_dict` checks them."""
        return {
            "space": self.space.name,
            "seed": self.seed,
            "budget": self.budget,
            "batch": self.batch,
            "max_repeats": self.max_repeats,
        }

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: ``strategy`` (kind), ``config``, ``tells``,
        ``repeats`` (``[count, answered]``), ``rng``
        (``random.Random.getstate()`` as ``[version, [ints], gauss_next]``) and the keys
        the subclass's :meth:`_state` adds."""
        version, internal, gauss = self._rng.getstate()
        return {
            "strategy": self.kind,
            "config": self.config,
            "tells": self._tells,
            "repeats": [self._repeats, self._answered],
            "rng": [version, list(internal), gauss],
            **self._state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict` output (possibly after a JSON round trip).

        Raises ``ValueError`` before changing anything when the kind or config differ.
        """
        if state.get("strategy") != self.kind:
            raise ValueError(f"state of a {state.get('strategy')!r} strategy, not {self.kind!r}")
        theirs, ours = state.get("config", {}), self.config
        differ = sorted(k for k in theirs.keys() | ours.keys() if theirs.get(k) != ours.get(k))
        if differ:
            raise ValueError(f"state was saved with a different config: {', '.join(differ)}")
        self._restore(state)
        self._tells = int(state["tells"])
        self._repeats, self._answered = int(state["repeats"][0]), bool(state["repeats"][1])
        version, internal, gauss = state["rng"]
        self._rng.setstate((version, tuple(internal), gauss))

    @abstractmethod
    def _state(self) -> dict[str, Any]:
        """The subclass's learnt state, JSON-able."""

    @abstractmethod
    def _restore(self, state: dict[str, Any]) -> None:
        """Set the learnt state from a :meth:`state_dict` (inverse of :meth:`_state`)."""


def random_architecture(space: Space, rng: random.Random) -> Hashable:
    """An architecture built by a random walk, each action drawn by ``space.sample``."""
    return space.architecture(random_walk(space, rng))


def encode_results(space: Space, results: Iterable[Result]) -> list[list[Any]]:
    """Results as JSON-able ``[space.format(arch), reward]`` rows."""
    return [[space.format(arch), reward] for arch, reward in results]


def decode_results(space: Space, rows: Iterable[list[Any]]) -> list[Result]:
    """Inverse of :func:`encode_results` (raises ``ValueError`` for invalid text)."""
    return [(space.parse(text), float(reward)) for text, reward in rows]
