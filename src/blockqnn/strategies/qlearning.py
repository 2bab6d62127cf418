"""Tabular Q-learning over a space's decision process (paper sections 3.2 and 4.2).

The agent learns on reward / 100 (a 0..1 scale, as MetaQNN) with Q initialised to 0.5
(docs/design.md section 3). A complete trajectory ``s_0, a_1, s_1, ..., a_T, s_T`` is updated
in reverse order (as MetaQNN does) with the paper's rules (3)-(5)::

    Q(s_T, .) = 0
    Q(s_{T-1}, a_T) <- (1 - alpha) Q(s_{T-1}, a_T) + alpha r_T
    Q(s_t, a_{t+1}) <- (1 - alpha) Q(s_t, a_{t+1}) + alpha [r_t + gamma max_a' Q(s_{t+1}, a')]

for t = T-2 down to 0, with the shaped intermediate reward r_t = r_T / T (rule 6), or
r_t = 0 when ``shaped=False`` (the ablation of Fig. 5). The max runs over the legal actions
of s_{t+1}, unseen ones counting as ``q_init``. The paper's alpha is a constant; the
default preset uses ``max(alpha, 1 / n)`` at an entry's n-th update (:func:`preset_options`).

With ``proposals`` M > 1 the agent also keeps a learned model of the reward
(:class:`~blockqnn.strategies.surrogate.RidgeSurrogate`, fitted on every result told) and
each ask walks the epsilon-greedy policy M times and returns the walk the model scores
best (mean + ``ucb`` standard deviations), preferring walks not evaluated yet. Q, its
updates and replay are unchanged: the model only chooses among the policy's proposals.

Pure Python (and numpy for the model): never imports torch.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Hashable, Sequence
from typing import Any

from blockqnn.space import Space, walk
from blockqnn.strategies.base import (
    DEFAULT_MAX_REPEATS,
    Result,
    Strategy,
    decode_results,
    encode_results,
)
from blockqnn.strategies.schedule import EpsilonSchedule, budget_schedule, iterations_for
from blockqnn.strategies.surrogate import RidgeSurrogate, featurizer

#: Options of the surrogate (recorded in :attr:`QLearningStrategy.config` only when it is
#: on, so states saved without it still load).
SURROGATE_OPTIONS = ("proposals", "ucb", "floor")

logger = logging.getLogger(__name__)


class QLearningStrategy(Strategy):
    """BlockQNN's agent: epsilon-greedy Q-learning with experience replay.

    - :meth:`ask` walks the space choosing, at each state, a uniformly random legal action
      with probability epsilon, else a legal action of maximal Q (ties uniformly at random).
      Only legal actions are ever offered (masking). Epsilon comes from ``schedule`` (the
      preset's) scaled to ``ceil(budget / batch)`` iterations, at the current
      :attr:`iteration`.
    - :meth:`tell` applies the update above to the told trajectory and stores the result
      in the replay memory (a duplicate answer only updates). After every ``batch``
      evaluations, ``replay`` remembered results are drawn uniformly with replacement and
      each is applied again (experience replay).

    - With ``proposals`` M > 1, :meth:`ask` walks the policy M times and returns the walk
      of best surrogate score ``mean + ucb * sd`` among those not yet evaluated (if any;
      ties to the first walk). The surrogate is fitted on the replay memory, so
      :meth:`load_state_dict` rebuilds it exactly.

    Settings come from ``preset`` (``"default"`` or ``"paper"``, :func:`preset_options`);
    ``options`` (``alpha``, ``gamma``, ``q_init``, ``per_visit``, ``shaped``, ``replay``,
    ``schedule``, ``max_repeats``, ``proposals``, ``ucb``, ``floor``) override them; an
    unknown option is a TypeError and a bad value a ValueError naming it.

    Q is stored sparsely, ``state -> {action: value}``, holding only updated entries, so a
    greedy choice looks at the stored entries plus ``q_init`` for the rest.
    """

    kind = "qlearning"
    logs = ("memory", "aliases")

    def __init__(
        self,
        space: Space,
        *,
        seed: int,
        budget: int,
        batch: int,
        preset: str = "default",
        **options: Any,
    ) -> None:
        settings = preset_options(preset, batch)
        unknown = sorted(set(options) - set(settings))
        if unknown:
            raise TypeError(f"unknown Q-learning option(s): {', '.join(unknown)}")
        settings.update(options)
        super().__init__(
            space, seed=seed, budget=budget, batch=batch, max_repeats=settings["max_repeats"]
        )
        self.preset = preset
        self.alpha = _number(settings, "alpha", 0.0, 1.0, low_open=True)
        self.gamma = _number(settings, "gamma", 0.0, 1.0)
        self.q_init = _number(settings, "q_init", -math.inf, math.inf)
        self.per_visit = _flag(settings, "per_visit")
        self.shaped = _flag(settings, "shaped")
        self.replay = _count(settings, "replay")
        self.proposals = _count(settings, "proposals")
        if self.proposals < 1:
            raise ValueError(f"proposals must be an integer >= 1, got {self.proposals}")
        self.ucb = _number(settings, "ucb", 0.0, math.inf)
        self.floor = _number(settings, "floor", 0.0, 0.99)
        self._surrogate = (
            RidgeSurrogate(featurizer(space), floor=self.floor) if self.proposals > 1 else None
        )
        self._evaluated: set[str] = set()  # keys of the architectures in memory
        template = settings["schedule"]
        if not isinstance(template, EpsilonSchedule):
            template = EpsilonSchedule(**template)
        self.schedule = template.scaled(iterations_for(budget, batch))
        self._q: dict[Hashable, dict[Hashable, float]] = {}
        self._visits: dict[Hashable, dict[Hashable, int]] = {}
        self._memory: list[Result] = []
        self._memory_rows: list[list[Any]] = []  # encoded memory[:len], extended lazily
        self._aliases: list[Hashable] = []  # duplicate answers that took a path of their own
        self._alias_rows: list[str] = []  # encoded aliases[:len], extended lazily
        # (state, action) -> (trajectory, step) of its first occurrence, the trajectory a
        # memory index or -1 - an alias index; names Q entries in state_dict without
        # needing states to be JSON-able.
        self._origin: dict[tuple[Hashable, Hashable], tuple[int, int]] = {}

    @property
    def epsilon(self) -> float:
        return self.schedule.epsilon(self.iteration)

    @property
    def memory(self) -> tuple[Result, ...]:
        """The replay memory: every told ``(arch, reward in percent)``, in tell order."""
        return tuple(self._memory)

    def q(self, state: Hashable, action: Hashable) -> float:
        """Q(state, action), ``q_init`` where never updated."""
        return self._q.get(state, {}).get(action, self.q_init)

    @property
    def surrogate(self) -> RidgeSurrogate | None:
        """The learned model of the reward (None when ``proposals`` is 1)."""
        return self._surrogate

    def _ask(self) -> Hashable:
        if self._surrogate is None:
            return self._walk()
        walks = [self._walk() for _ in range(self.proposals)]
        means, spreads = self._surrogate.predict(walks)
        scores = [m + self.ucb * s if self.ucb else m for m, s in zip(means, spreads, strict=True)]
        ranked = sorted(range(len(walks)), key=lambda i: -scores[i])  # stable: ties by order
        fresh = (i for i in ranked if self.space.key(walks[i]) not in self._evaluated)
        return walks[next(fresh, ranked[0])]

    def _walk(self) -> Hashable:
        """One walk of the epsilon-greedy policy."""
        epsilon = self.epsilon
        actions = walk(self.space, lambda state, legal: self._choose(state, legal, epsilon))
        return self.space.architecture(actions)

    def _choose(self, state: Hashable, actions: Sequence[Hashable], epsilon: float) -> Hashable:
        if self._rng.random() < epsilon:
            return self.space.sample(state, actions, self._rng)
        return self._greedy(state, actions)

    def _greedy(self, state: Hashable, actions: Sequence[Hashable]) -> Hashable:
        """A legal action of maximal Q, uniformly among ties (unseen ones are worth q_init)."""
        row = self._q.get(state, {})
        best = self._row_max(row, len(actions))
        tied = [a for a, v in row.items() if v == best]
        unseen = len(actions) - len(row) if best == self.q_init else 0
        k = self._rng.randrange(len(tied) + unseen)
        return tied[k] if k < len(tied) else self._unseen(state, row, actions)

    def _unseen(
        self, state: Hashable, row: dict[Hashable, float], actions: Sequence[Hashable]
    ) -> Hashable:
        """A random legal action without a stored Q value (the space's distribution)."""
        if 2 * len(row) > len(actions):
            return self.space.sample(state, [a for a in actions if a not in row], self._rng)
        while True:
            action = self.space.sample(state, actions, self._rng)
            if action not in row:
                return action

    def _row_max(self, row: dict[Hashable, float], n_actions: int) -> float:
        """max over ``n_actions`` legal actions of which ``row`` holds the updated ones."""
        best = max(row.values(), default=self.q_init)
        return best if len(row) >= n_actions else max(best, self.q_init)

    def _value(self, state: Hashable) -> float:
        """max_a' Q(state, a'); 0 for a terminal state (rule 3)."""
        if self.space.is_terminal(state):
            return 0.0
        return self._row_max(self._q.get(state, {}), len(self.space.actions(state)))

    def _observe(self, arch: Hashable, reward: float) -> None:
        states, actions = self._remember(arch, reward)
        self._update(states, actions, reward)

    def _observe_duplicate(self, arch: Hashable, reward: float) -> None:
        """A re-proposal answered with its stored reward: the update, no new memory. (An
        isomorphic re-proposal may take a path of its own: its new entries are named by
        the re-proposal, kept as an alias.)"""
        states, actions = self._path(arch)
        pairs = list(zip(states[:-1], actions, strict=True))
        if any(pair not in self._origin for pair in pairs):
            index = -1 - len(self._aliases)
            self._aliases.append(arch)
            for step, pair in enumerate(pairs):
                self._origin.setdefault(pair, (index, step))
        self._update(states, actions, reward)

    def _end_iteration(self) -> None:
        for _ in range(self.replay if self._memory else 0):
            arch, reward = self._rng.choice(self._memory)
            self._update(*self._path(arch), reward)
        logger.debug("replayed %d of %d results", self.replay, len(self._memory))
        super()._end_iteration()

    def _remember(self, arch: Hashable, reward: float) -> tuple[list, list]:
        """Append to the replay memory; returns the trajectory's states and actions."""
        states, actions = self._path(arch)
        index = len(self._memory)
        for step, pair in enumerate(zip(states[:-1], actions, strict=True)):
            self._origin.setdefault(pair, (index, step))
        self._memory.append((arch, reward))
        self._learn_model(arch, reward)
        return states, actions

    def _learn_model(self, arch: Hashable, reward: float) -> None:
        if self._surrogate is not None:
            self._surrogate.add(arch, reward)
            self._evaluated.add(self.space.key(arch))

    def _path(self, arch: Hashable) -> tuple[list, list]:
        """States s_0..s_T and actions a_1..a_T of ``arch``'s trajectory."""
        actions = self.space.trajectory(arch)
        states = [self.space.initial_state()]
        for action in actions:
            states.append(self.space.step(states[-1], action))
        return states, actions

    def _update(self, states: list, actions: list, reward: float) -> None:
        """Rules (3)-(5) on one trajectory, last step first; ``reward`` in percent."""
        final = reward / 100.0
        steps = len(actions)
        intermediate = final / steps if self.shaped else 0.0
        for t in reversed(range(steps)):
            r = final if t == steps - 1 else intermediate
            target = r + self.gamma * self._value(states[t + 1])
            row = self._q.setdefault(states[t], {})
            old = row.get(actions[t], self.q_init)
            row[actions[t]] = old + self._rate(states[t], actions[t]) * (target - old)

    def _rate(self, state: Hashable, action: Hashable) -> float:
        """The learning rate of this update of Q(state, action): ``alpha``, or with
        ``per_visit`` ``max(alpha, 1 / n)`` for its n-th update (Watkins), which makes Q
        the running mean of its targets until n reaches 1 / alpha."""
        visits = self._visits.setdefault(state, {})
        n = visits[action] = visits.get(action, 0) + 1
        return max(self.alpha, 1.0 / n) if self.per_visit else self.alpha

    @property
    def config(self) -> dict[str, Any]:
        return {
            **super().config,
            "preset": self.preset,
            "alpha": self.alpha,
            "gamma": self.gamma,
            "q_init": self.q_init,
            "per_visit": self.per_visit,
            "shaped": self.shaped,
            "replay": self.replay,
            "schedule": self.schedule.as_dict(),
            **({} if self._surrogate is None else {k: getattr(self, k) for k in SURROGATE_OPTIONS}),
        }

    def _state(self) -> dict[str, Any]:
        """``memory`` (``[arch text, reward]`` rows in tell order), ``aliases`` (arch texts)
        and ``q`` (``[trajectory, step, value, updates]`` rows: the entry for the state and
        action at that step of that trajectory, a memory index or -1 - an alias index, in
        table order)."""
        self._memory_rows += encode_results(self.space, self._memory[len(self._memory_rows) :])
        self._alias_rows += map(self.space.format, self._aliases[len(self._alias_rows) :])
        rows = [
            [*self._origin[s, a], v, self._visits[s][a]]
            for s, row in self._q.items()
            for a, v in row.items()
        ]
        return {"memory": list(self._memory_rows), "aliases": list(self._alias_rows), "q": rows}

    def _restore(self, state: dict[str, Any]) -> None:
        self._memory = decode_results(self.space, state["memory"])
        self._memory_rows = []
        if self._surrogate is not None:
            self._surrogate = RidgeSurrogate(featurizer(self.space), floor=self.floor)
            self._evaluated = set()
            for arch, reward in self._memory:
                self._learn_model(arch, reward)
        self._aliases = [self.space.parse(text) for text in state["aliases"]]
        self._alias_rows = []
        paths: dict[int, list[tuple[Hashable, Hashable]]] = {}
        self._q, self._visits, self._origin = {}, {}, {}
        for index, step, value, visits in state["q"]:
            if index not in paths:
                arch = self._memory[index][0] if index >= 0 else self._aliases[-1 - index]
                states, actions = self._path(arch)
                paths[index] = list(zip(states[:-1], actions, strict=True))
            s, a = pair = paths[index][step]
            self._q.setdefault(s, {})[a] = float(value)
            self._visits.setdefault(s, {})[a] = int(visits)
            self._origin[pair] = (index, step)


def random_search(
    space: Space, *, seed: int, budget: int, batch: int, **options: Any
) -> QLearningStrategy:
    """The paper's random-search baseline (Appendix A): the same pipeline, epsilon = 1,
    each proposal one random walk (``proposals`` 1: no model of the reward chooses)."""
    options["schedule"] = EpsilonSchedule.constant(1.0)
    options.setdefault("proposals", 1)
    return QLearningStrategy(space, seed=seed, budget=budget, batch=batch, **options)


def preset_options(preset: str, batch: int) -> dict[str, Any]:
    """The Q-learning settings of ``preset`` (ValueError for an unknown one).

    - ``"paper"``: the paper's agent exactly: alpha 0.01 for every update, gamma 1, Q
      initialised to 0.5, shaped reward, replay of 64 results after every iteration and
      the paper's epsilon schedule (95, 7, 7, 7, 10 x 5, 12 iterations) scaled to the budget.
    - ``"default"``: the same algorithm fitted to budgets of 50-2,000 evaluations: the
      learning rate of each entry is ``max(alpha, 1 / n)`` at its n-th update (Watkins), so
      Q is the mean of its targets rather than a slow drift from 0.5 (with alpha 0.01 and
      a few visits per entry Q otherwise tracks visit counts, not rewards); replay is 1:1
      with the batch, as the paper's 64 of 64; and the epsilon = 1 stage is a quarter of
      the budget instead of the paper's 53%, with the later stages in the paper's
      proportions (:func:`~blockqnn.strategies.schedule.budget_schedule`); and each
      proposal is the best of 128 walks of the policy by the learned model of the reward
      (targets below their median raised to it, no uncertainty bonus), chosen on the
      search signal only (``benchmarks/choose_surrogate.py``, docs/benchmarks.md).
    """
    paper = {
        "alpha": 0.01,
        "gamma": 1.0,
        "q_init": 0.5,
        "per_visit": False,
        "shaped": True,
        "replay": 64,
        "schedule": EpsilonSchedule(),
        "max_repeats": DEFAULT_MAX_REPEATS,
        "proposals": 1,
        "ucb": 0.0,
        "floor": 0.0,
    }
    if preset == "paper":
        return paper
    if preset == "default":
        return {
            **paper,
            "per_visit": True,
            "replay": batch,
            "schedule": budget_schedule(),
            "proposals": 128,
            "floor": 0.5,
        }
    raise ValueError(f"unknown Q-learning preset {preset!r}; presets: default, paper")


def _number(
    settings: dict[str, Any], name: str, low: float, high: float, *, low_open: bool = False
) -> float:
    value = settings[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    below = value <= low if low_open else value < low
    if math.isnan(value) or below or value > high:
        bounds = f"{'(' if low_open else '['}{low}, {high}]"
        raise ValueError(f"{name} must lie in {bounds}, got {value}")
    return value


def _flag(settings: dict[str, Any], name: str) -> bool:
    value = settings[name]
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def _count(settings: dict[str, Any], name: str) -> int:
    value = settings[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    return value
