"""Search spaces as decision processes.

An agent builds an architecture by walking a finite decision process: from the initial
state it picks one of the legal actions, moves to the next state, and so on until a
terminal state. :class:`Space` is the contract every space implements (the NSC block
space here, the NAS-Bench-201 cell space in :mod:`blockqnn.nb201`). States and actions are
hashable plain data, so Q tables and run stores never need to know the space.

This module is pure Python: it never imports torch.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Sequence
from functools import lru_cache
from typing import Protocol, runtime_checkable

from blockqnn import nsc
from blockqnn.nsc import KERNELS, TWO_INPUT, Layer, LayerType


@runtime_checkable
class Space(Protocol):
    """A finite decision process whose complete trajectories are architectures.

    Contract: every sequence of actions taken from :meth:`actions` starting at
    :meth:`initial_state` reaches a terminal state in a bounded number of steps, and
    :meth:`architecture` of that sequence is valid (``parse(format(a)) == a``).

    A space that can count its distinct architectures (distinct :meth:`key` values) has
    an attribute ``distinct`` holding the count (:func:`distinct` reads it; None where a
    space cannot count them).
    """

    name: str

    def initial_state(self) -> Hashable:
        """The state before any decision."""

    def actions(self, state: Hashable) -> Sequence[Hashable]:
        """The legal actions from ``state`` (empty only for terminal states)."""

    def step(self, state: Hashable, action: Hashable) -> Hashable:
        """The state reached by taking ``action`` in ``state``."""

    def is_terminal(self, state: Hashable) -> bool:
        """Whether ``state`` ends a trajectory."""

    def sample(self, state: Hashable, actions: Sequence[Hashable], rng: random.Random) -> Hashable:
        """A random one of ``actions`` (legal in ``state``): the space's exploration
        distribution, used whenever a strategy explores."""

    def architecture(self, actions: Sequence[Hashable]) -> Hashable:
        """The architecture a complete trajectory describes."""

    def trajectory(self, arch: Hashable) -> list[Hashable]:
        """The actions that build ``arch`` (inverse of :meth:`architecture`)."""

    def key(self, arch: Hashable) -> str:
        """A canonical key: equal for architectures that are the same network."""

    def format(self, arch: Hashable) -> str:
        """Text form of ``arch``; :meth:`parse` reads it back."""

    def parse(self, text: str) -> Hashable:
        """Read an architecture from its text form (raises ``ValueError``)."""

    def mutate(self, arch: Hashable, rng: random.Random) -> Hashable:
        """A different valid architecture one legal change away from ``arch``."""


def distinct(space: Space) -> int | None:
    """The number of distinct architectures of ``space`` (by key), None when unknown."""
    return getattr(space, "distinct", None)


def random_walk(space: Space, rng: random.Random) -> list[Hashable]:
    """A trajectory of actions each drawn by ``space.sample``."""
    return walk(space, lambda state, actions: space.sample(state, actions, rng))


def walk(space: Space, choose) -> list[Hashable]:
    """Run one trajectory, calling ``choose(state, actions)`` to pick each action."""
    state, taken = space.initial_state(), []
    while not space.is_terminal(state):
        action = choose(state, space.actions(state))
        taken.append(action)
        state = space.step(state, action)
    return taken


INPUT_STATE = Layer(0, 0, 0, 0, 0)


class NSCSpace:
    """The BlockQNN block space (docs/design.md section 2).

    State: the code of the current layer (the block input is ``(0,0,0,0,0)``). Action: the
    code of the next layer, index + 1. Predecessors range over 0..index; add and concat
    take two different ones (offered once, pred1 > pred2); no terminal directly after the
    input; at ``max_index`` only the terminal is legal. ``types`` are the layer types
    offered (the terminal always is): the paper's PCC space by default, or
    ``nsc.SEPARATE_TYPES`` for the Fig. 9 ablation with separate ReLU / BN / Conv codes.
    """

    name = "nsc"

    def __init__(
        self,
        max_index: int = nsc.DEFAULT_MAX_INDEX,
        types: Sequence[int] = nsc.PCC_TYPES,
    ) -> None:
        if max_index < 2:
            raise ValueError(f"max_index must be at least 2, got {max_index}")
        self.max_index = max_index
        self.types = tuple(sorted({LayerType(t) for t in types} | {LayerType.TERMINAL}))
        self._actions = lru_cache(maxsize=None)(self._actions_at)
        self._cached_groups = lru_cache(maxsize=None)(
            lambda j: self._groups(list(self._actions(j)))
        )

    def initial_state(self) -> Layer:
        return INPUT_STATE

    def actions(self, state: Layer) -> tuple[Layer, ...]:
        if self.is_terminal(state):
            return ()
        return self._actions(state.index + 1)

    def _actions_at(self, j: int) -> tuple[Layer, ...]:
        terminal = Layer(j, LayerType.TERMINAL, 0, 0, 0)
        if j >= self.max_index:
            return (terminal,)
        out = []
        for t in self.types:
            if t == LayerType.TERMINAL:
                continue
            if t in TWO_INPUT:
                out += [Layer(j, t, 0, a, b) for a in range(j) for b in range(a)]
            else:
                out += [Layer(j, t, k, p, 0) for k in KERNELS[t] for p in range(j)]
        return tuple(out) + ((terminal,) if j > 1 else ())

    def sample(self, state: Layer, actions: Sequence[Layer], rng: random.Random) -> Layer:
        """Type first, uniformly among the legal types, then uniformly among that type's
        kernels and predecessors. (Uniform over all actions would pick the terminal once
        in hundreds of choices and make almost every random block reach the maximum
        index; the paper's random-exploration blocks are small.)"""
        groups = self._groups(actions)
        return rng.choice(groups[rng.choice(sorted(groups))])

    def _groups(self, actions: Sequence[Layer]) -> dict[int, list[Layer]]:
        if actions and actions is self._actions(actions[0].index):
            return self._cached_groups(actions[0].index)
        groups: dict[int, list[Layer]] = {}
        for a in actions:
            groups.setdefault(a.type, []).append(a)
        return groups

    def step(self, state: Layer, action: Layer) -> Layer:
        return action

    def is_terminal(self, state: Layer) -> bool:
        return state.type == LayerType.TERMINAL

    def architecture(self, actions: Sequence[Layer]) -> nsc.Block:
        block = tuple(Layer(*a) for a in actions)
        nsc.validate(block, self.max_index, self.types)
        return block

    def trajectory(self, arch: nsc.Block) -> list[Layer]:
        return list(arch)

    def key(self, arch: nsc.Block) -> str:
        return nsc.canonical_key(arch)

    def format(self, arch: nsc.Block) -> str:
        return nsc.format_block(arch)

    def parse(self, text: str) -> nsc.Block:
        return nsc.parse(text, self.max_index, self.types)

    def mutate(self, arch: nsc.Block, rng: random.Random) -> nsc.Block:
        """Replace one layer by another legal layer, append one, or drop the last one."""
        body = list(nsc.body(arch))
        parent_key, moves = self.key(arch), ["replace"]
        if len(body) + 1 < self.max_index:
            moves.append("append")
        if len(body) > 1:
            moves.append("drop")
        while True:
            move = rng.choice(moves)
            if move == "replace":
                i = rng.randrange(len(body))
                options = [a for a in self._actions(i + 1) if a != body[i] and a.type != 7]
                new = body[:i] + [rng.choice(options)] + body[i + 1 :]
            elif move == "append":
                j = len(body) + 1
                new = body + [rng.choice([a for a in self._actions(j) if a.type != 7])]
            else:
                new = body[:-1]
            block = tuple(new) + (Layer(len(new) + 1, LayerType.TERMINAL, 0, 0, 0),)
            if self.key(block) != parent_key:
                return block
