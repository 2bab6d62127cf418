"""Search strategies: Q-learning update rules, schedule, replay, masking, determinism, resume."""

from __future__ import annotations

import functools
import json
import random
import zlib
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blockqnn import config, nsc
from blockqnn.config import SearchConfig, make_space
from blockqnn.space import NSCSpace, Space
from blockqnn.strategies import (
    STRATEGIES,
    EpsilonSchedule,
    EvolutionStrategy,
    QLearningStrategy,
    iterations_for,
    make_strategy,
)
from blockqnn.strategies.schedule import PAPER_COUNTS, PAPER_EPSILONS


class BitSpace:
    """Toy decision process: ``depth`` choices among ``width`` ints; a state is the prefix.

    Counts ``trajectory`` calls (one per Q update) and remembers mutated parents.
    """

    name = "bits"

    def __init__(self, depth: int = 2, width: int = 2) -> None:
        self.depth, self.width = depth, width
        self.trajectory_calls = 0
        self.parents: list[tuple[int, ...]] = []

    def initial_state(self):
        return ()

    def actions(self, state):
        return () if self.is_terminal(state) else tuple(range(self.width))

    def step(self, state, action):
        return (*state, action)

    def is_terminal(self, state):
        return len(state) == self.depth

    def sample(self, state, actions, rng):
        return rng.choice(actions)

    def architecture(self, actions):
        arch = tuple(actions)
        assert len(arch) == self.depth and all(0 <= a < self.width for a in arch)
        return arch

    def trajectory(self, arch):
        self.trajectory_calls += 1
        return list(arch)

    def key(self, arch):
        return self.format(arch)

    def format(self, arch):
        return ",".join(map(str, arch))

    def parse(self, text):
        return self.architecture(int(x) for x in text.split(","))

    def mutate(self, arch, rng):
        self.parents.append(arch)
        i = rng.randrange(self.depth)
        new = rng.choice([v for v in range(self.width) if v != arch[i]])
        return (*arch[:i], new, *arch[i + 1 :])


def agent(space, **options) -> QLearningStrategy:
    """The paper's Q agent that never replays unless asked (one long iteration)."""
    options.setdefault("replay", 0)
    options.setdefault("preset", "paper")
    return QLearningStrategy(space, seed=0, budget=1000, batch=1000, **options)


# --- update rules (3)-(6), worked by hand: alpha 0.01, gamma 1, q_init 0.5, reward / 100 --


def test_bit_space_implements_the_protocol():
    assert isinstance(BitSpace(), Space)


@pytest.mark.parametrize(
    ("shaped", "gamma", "first"),
    [
        # 0.99 * 0.5 + 0.01 * (0.8 / 2 + 1 * max(Q((0,), 0) = 0.5 unseen, 0.503))
        (True, 1.0, 0.50403),
        # 0.99 * 0.5 + 0.01 * (0 + 0.503)
        (False, 1.0, 0.50003),
        # 0.99 * 0.5 + 0.01 * (0.4 + 0.5 * 0.503)
        (True, 0.5, 0.501515),
    ],
)
def test_two_step_update(shaped, gamma, first):
    q = agent(BitSpace(2), shaped=shaped, gamma=gamma)
    q.tell((0, 1), 80.0)
    # Last step: 0.99 * 0.5 + 0.01 * 0.8, Q(s_T, .) = 0 (with 0.5 there it would be 0.506).
    assert q.q((0,), 1) == pytest.approx(0.503, abs=1e-12)
    assert q.q((), 0) == pytest.approx(first, abs=1e-12)
    assert q.q((), 1) == q.q((0,), 0) == 0.5  # never updated
    assert q.memory == (((0, 1), 80.0),)


@pytest.mark.parametrize(
    ("shaped", "expected"),
    [
        # Q((1,0),1) = 0.99*0.5 + 0.01*0.6; then each earlier step adds r_t = 0.6 / 3 = 0.2
        (True, {((1, 0), 1): 0.501, ((1,), 0): 0.50201, ((), 1): 0.5020201}),
        (False, {((1, 0), 1): 0.501, ((1,), 0): 0.50001, ((), 1): 0.5000001}),
    ],
)
def test_three_step_update(shaped, expected):
    q = agent(BitSpace(3), shaped=shaped)
    q.tell((1, 0, 1), 60.0)
    for (state, action), value in expected.items():
        assert q.q(state, action) == pytest.approx(value, abs=1e-12)


def test_max_uses_q_init_for_unseen_actions_only():
    q = agent(BitSpace(2))
    q.tell((0, 1), 10.0)  # Q((0,),1) = 0.496 < q_init
    assert q.q((0,), 1) == pytest.approx(0.496, abs=1e-12)
    # max over (0,)'s actions is the unseen action's 0.5: 0.495 + 0.01 * (0.05 + 0.5)
    assert q.q((), 0) == pytest.approx(0.5005, abs=1e-12)
    q.tell((0, 0), 10.0)  # now both actions of (0,) are stored (0.496): max is 0.496
    assert q.q((0,), 0) == pytest.approx(0.496, abs=1e-12)
    assert q.q((), 0) == pytest.approx(0.99 * 0.5005 + 0.01 * (0.05 + 0.496), abs=1e-12)


def test_replay_applies_the_update_to_remembered_results():
    q = QLearningStrategy(BitSpace(2), seed=0, budget=10, batch=1, replay=2, preset="paper")
    q.tell((0, 1), 80.0)
    # one update from the tell, two replays of the only remembered result
    value = 0.5
    for _ in range(3):
        value = 0.99 * value + 0.01 * 0.8
    assert q.q((0,), 1) == pytest.approx(value, abs=1e-12)


@pytest.mark.parametrize("replay", [0, 5, 64])
def test_replay_happens_exactly_at_iteration_boundaries(replay):
    space = BitSpace(2)
    # proposals=1: no model of the reward, which would read trajectories too
    q = QLearningStrategy(space, seed=1, budget=30, batch=3, replay=replay, proposals=1)
    updates = []
    for i in range(7):
        q.tell((i % 2, 1), 50.0 + i)
        updates.append(space.trajectory_calls)  # one trajectory per Q update
    r = replay
    assert updates == [1, 2, 3 + r, 4 + r, 5 + r, 6 + 2 * r, 7 + 2 * r]
    assert q.iteration == 2 and q.tells == 7


def test_greedy_breaks_ties_uniformly_over_legal_actions():
    space = BitSpace(depth=1, width=5)
    greedy = QLearningStrategy(
        space,
        seed=0,
        budget=10,
        batch=10,
        replay=0,
        schedule=EpsilonSchedule.constant(0.0),
        preset="paper",
    )
    counts = Counter(greedy.ask()[0] for _ in range(500))  # empty table: all tie at q_init
    assert set(counts) == set(range(5)) and min(counts.values()) > 60
    greedy.tell((0,), 20.0)
    greedy.tell((1,), 20.0)  # below q_init: the unseen actions 2, 3, 4 are the best
    counts = Counter(greedy.ask()[0] for _ in range(300))
    assert set(counts) == {2, 3, 4} and min(counts.values()) > 60
    greedy.tell((3,), 80.0)
    greedy.tell((4,), 80.0)  # equal and above q_init: a tie between 3 and 4
    counts = Counter(greedy.ask()[0] for _ in range(200))
    assert set(counts) == {3, 4} and min(counts.values()) > 60


@pytest.mark.parametrize("epsilon", [0.0, 0.5, 1.0])
def test_random_actions_at_rate_epsilon(epsilon):
    space = BitSpace(depth=1, width=2)
    schedule = EpsilonSchedule.constant(epsilon)
    q = QLearningStrategy(
        space, seed=0, budget=10, batch=10, replay=0, schedule=schedule, proposals=1
    )  # one walk per proposal: the policy's own rate
    q.tell((1,), 90.0)  # greedy: action 1; a random action is 0 half the time
    zeros = sum(q.ask() == (0,) for _ in range(2000))
    assert abs(zeros - 2000 * epsilon / 2) <= 100


def test_invalid_options_and_rewards():
    with pytest.raises(ValueError, match="alpha"):
        agent(BitSpace(), alpha=0.0)
    with pytest.raises(ValueError, match="replay"):
        agent(BitSpace(), replay=-1)
    with pytest.raises(ValueError, match="finite"):
        agent(BitSpace()).tell((0, 0), float("nan"))


# --- the epsilon schedule ----------------------------------------------------------------


def test_paper_schedule():
    paper = EpsilonSchedule()
    assert sum(PAPER_COUNTS) == paper.iterations == 178
    assert paper.scaled(178) == paper
    assert [paper.epsilon(i) for i in (0, 94, 95, 101, 102, 108, 109, 116, 165, 166, 177)] == [
        1.0, 1.0, 0.9, 0.9, 0.8, 0.8, 0.7, 0.6, 0.2, 0.1, 0.1
    ]  # fmt: skip
    assert paper.epsilon(10_000) == 0.1
    with pytest.raises(ValueError):
        paper.epsilon(-1)


def test_scaled_examples():
    paper = EpsilonSchedule()
    # exact halves 47.5, 3.5 x3: the remainder goes to the earliest levels
    assert paper.scaled(89).counts == (48, 4, 3, 3, 5, 5, 5, 5, 5, 6)
    assert paper.scaled(10).counts == (1,) * 10
    assert paper.scaled(356).counts == tuple(2 * c for c in PAPER_COUNTS)
    assert sum(paper.scaled(3).counts) == 3
    with pytest.raises(ValueError):
        paper.scaled(0)


@given(st.integers(min_value=1, max_value=5000))
def test_scaled_sums_and_keeps_proportions(n):
    scaled = EpsilonSchedule().scaled(n)
    assert sum(scaled.counts) == n
    assert scaled.epsilons == PAPER_EPSILONS
    if n >= len(PAPER_COUNTS):
        assert min(scaled.counts) >= 1
    if n * min(PAPER_COUNTS) >= 178:  # every exact share is at least one
        assert all(
            abs(c - n * p / 178) < 1 for c, p in zip(scaled.counts, PAPER_COUNTS, strict=True)
        )


def test_constant_schedule_and_iterations_for():
    constant = EpsilonSchedule.constant(1.0)
    assert constant.scaled(37).counts == (37,)
    assert {constant.scaled(37).epsilon(i) for i in range(100)} == {1.0}
    assert iterations_for(11_392, 64) == 178
    assert iterations_for(100, 64) == 2
    assert iterations_for(64, 64) == 1
    with pytest.raises(ValueError):
        iterations_for(0, 64)
    with pytest.raises(ValueError):
        EpsilonSchedule(counts=(1, 2), epsilons=(0.5,))


def test_agent_epsilon_follows_the_scaled_schedule():
    q = QLearningStrategy(BitSpace(), seed=0, budget=89 * 4, batch=4, replay=0, preset="paper")
    assert q.schedule.counts == (48, 4, 3, 3, 5, 5, 5, 5, 5, 6)
    seen = []
    for _ in range(89 * 4 + 8):
        seen.append(q.epsilon)
        q.tell((0, 0), 50.0)
    assert seen[: 48 * 4] == [1.0] * (48 * 4)
    assert seen[48 * 4] == 0.9 and seen[52 * 4 - 1] == 0.9 and seen[52 * 4] == 0.8
    assert seen[-1] == 0.1


# --- masking: every proposal is a legal trajectory ---------------------------------------


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), epsilon=st.sampled_from([0.0, 0.3, 1.0]))
@pytest.mark.parametrize("max_index", [6, nsc.DEFAULT_MAX_INDEX])
def test_q_agent_proposals_always_validate(max_index, seed, epsilon):
    space = NSCSpace(max_index=max_index)
    q = QLearningStrategy(
        space, seed=seed, budget=100, batch=10, schedule=EpsilonSchedule.constant(epsilon)
    )
    rng = random.Random(seed)
    teacher = make_strategy("random", space, seed=seed, budget=100, batch=10)
    for _ in range(10):  # a non-trivial Q table, some entries above and below q_init
        q.tell(teacher.ask(), rng.uniform(30, 90))
    for _ in range(5):
        block = q.ask()
        nsc.validate(block, max_index)
        state = space.initial_state()
        for action in space.trajectory(block):
            assert action in space.actions(state)
            state = space.step(state, action)
        q.tell(block, rng.uniform(30, 90))


# --- determinism and resume --------------------------------------------------------------


def reward_of(space, arch) -> float:
    """A deterministic pseudo-reward in 0..99.9 percent."""
    return zlib.crc32(space.format(arch).encode()) % 1000 / 10


def drive(strategy, n: int, seed: int, in_flight: int = 4) -> list[str]:
    """Ask n candidates, up to ``in_flight`` at once, telling them back in shuffled order."""
    rng, pending, proposed = random.Random(seed), [], []
    for _ in range(n):
        pending.append(strategy.ask())
        proposed.append(strategy.space.format(pending[-1]))
        if len(pending) == in_flight:
            arch = pending.pop(rng.randrange(len(pending)))
            strategy.tell(arch, reward_of(strategy.space, arch))
    for arch in rng.sample(pending, len(pending)):
        strategy.tell(arch, reward_of(strategy.space, arch))
    return proposed


#: Test spaces, then every registered space (as a run configuration builds it).
SPACES = {
    "bits": lambda: BitSpace(depth=6, width=5),
    "nsc6": lambda: NSCSpace(max_index=6),
    **{
        name: functools.partial(make_space, SearchConfig(space=name, evaluator={"kind": "train"}))
        for name in config.SPACES
    },
}
#: Every registered strategy.
NAMES = sorted(STRATEGIES)


def build(name, space_name, seed=7, **options):
    return make_strategy(name, SPACES[space_name](), seed=seed, budget=120, batch=8, **options)


@pytest.mark.parametrize("space_name", list(SPACES))
@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_proposals(name, space_name):
    first, second = build(name, space_name), build(name, space_name)
    assert drive(first, 60, seed=1) == drive(second, 60, seed=1)
    assert build(name, space_name, seed=8).ask() != build(name, space_name).ask()


@pytest.mark.parametrize("space_name", list(SPACES))
@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip_continues_identically(name, space_name):
    original = build(name, space_name)
    drive(original, 50, seed=1)
    state = json.loads(json.dumps(original.state_dict()))
    resumed = build(name, space_name)
    resumed.load_state_dict(state)
    assert resumed.tells == original.tells and resumed.epsilon == original.epsilon
    assert drive(resumed, 50, seed=2) == drive(original, 50, seed=2)
    assert json.dumps(resumed.state_dict()) == json.dumps(original.state_dict())


def test_q_state_dict_holds_the_q_table():
    q = agent(BitSpace(2))
    q.tell((0, 1), 80.0)
    q.tell((1, 1), 40.0)
    state = q.state_dict()
    assert state["strategy"] == "qlearning"
    assert state["memory"] == [["0,1", 80.0], ["1,1", 40.0]]
    # [memory index, step, value] in table order: Q((0,), 1) (step 1 of result 0) was
    # updated first, then Q((), 0), Q((1,), 1), Q((), 1); states are grouped
    assert [row[:2] for row in state["q"]] == [[0, 1], [0, 0], [1, 0], [1, 1]]
    assert state["q"][0][2] == pytest.approx(0.503)


def test_load_state_dict_rejects_other_configs():
    state = build("qlearning", "bits").state_dict()
    with pytest.raises(ValueError, match="schedule"):
        build("random", "bits").load_state_dict(state)
    with pytest.raises(ValueError, match="alpha"):
        build("qlearning", "bits", alpha=0.1).load_state_dict(state)
    with pytest.raises(ValueError, match="evolution"):
        build("evolution", "bits").load_state_dict(state)


def test_registry():
    random_search = make_strategy("random", BitSpace(), seed=0, budget=640, batch=64)
    assert isinstance(random_search, QLearningStrategy)
    assert random_search.schedule.counts == (10,)
    for _ in range(640):
        assert random_search.epsilon == 1.0
        random_search.tell((1, 1), 90.0)
    evolution = make_strategy("evolution", BitSpace(), seed=0, budget=10, batch=2)
    assert isinstance(evolution, EvolutionStrategy) and evolution.epsilon is None
    with pytest.raises(ValueError, match=r"unknown strategy 'nope'.*evolution, qlearning, random"):
        make_strategy("nope", BitSpace(), seed=0, budget=10, batch=2)


# --- learning and evolution --------------------------------------------------------------


def test_agent_learns_the_rewarded_action():
    space = BitSpace(depth=3, width=2)
    q = QLearningStrategy(space, seed=3, budget=400, batch=20)
    firsts = []
    for _ in range(400):
        arch = q.ask()
        firsts.append(arch[0])
        q.tell(arch, 90.0 if arch[0] == 1 else 20.0)
    assert q.q((), 1) > q.q((), 0)
    assert sum(firsts[-40:]) >= 34  # epsilon 0.1 at the end: mostly greedy
    assert sum(firsts[:100]) < 70  # epsilon 1 at the start: about half


def test_evolution_starts_random_then_mutates_the_tournament_winner():
    space = BitSpace(depth=4, width=2)
    evo = EvolutionStrategy(space, seed=0, budget=100, batch=4, population_size=4, sample_size=64)
    first = [evo.ask() for _ in range(6)]  # all in flight: still random
    assert space.parents == []
    rewards = [10.0, 70.0, 30.0, 50.0]
    for arch, reward in zip(first[:4], rewards, strict=True):
        evo.tell(arch, reward)
    assert evo.population == tuple(zip(first[:4], rewards, strict=True))
    child = evo.ask()
    assert space.parents == [first[1]]  # the best of 64 draws from 4 members
    assert sum(a != b for a, b in zip(child, first[1], strict=True)) == 1


def test_evolution_ages_out_the_oldest():
    space = BitSpace(depth=4, width=2)
    evo = EvolutionStrategy(space, seed=0, budget=100, batch=4, population_size=5)
    told = []
    for i in range(12):
        arch = evo.ask()
        evo.tell(arch, 100.0 - i)  # the oldest is the best: aging drops it all the same
        told.append((arch, 100.0 - i))
        assert evo.population == tuple(told[-5:])
    assert len(space.parents) == 12 - 5


# --- presets and duplicate answers ---------------------------------------------------------


def test_the_paper_preset_is_pinned():
    q = make_strategy("qlearning", BitSpace(), seed=0, budget=178 * 64, batch=64, preset="paper")
    assert q.config == {
        "space": "bits",
        "seed": 0,
        "budget": 178 * 64,
        "batch": 64,
        "max_repeats": 50,
        "preset": "paper",
        "alpha": 0.01,
        "gamma": 1.0,
        "q_init": 0.5,
        "per_visit": False,
        "shaped": True,
        "replay": 64,
        "schedule": {"counts": list(PAPER_COUNTS), "epsilons": list(PAPER_EPSILONS)},
    }


def test_the_default_preset_is_pinned():
    q = make_strategy("qlearning", BitSpace(), seed=0, budget=400, batch=20)
    assert q.config == {
        "space": "bits",
        "seed": 0,
        "budget": 400,
        "batch": 20,
        "max_repeats": 50,
        "preset": "default",
        "alpha": 0.01,
        "gamma": 1.0,
        "q_init": 0.5,
        "per_visit": True,
        "shaped": True,
        "replay": 20,  # 1:1 with the batch
        # a quarter of the iterations at epsilon 1, the rest in the paper's proportions
        "schedule": {"counts": [5, 1, 1, 1, 2, 2, 2, 2, 2, 2], "epsilons": list(PAPER_EPSILONS)},
        # the best of 128 policy walks by the model of the reward (targets floored at the median)
        "proposals": 128,
        "ucb": 0.0,
        "floor": 0.5,
    }


def test_options_override_the_preset_and_unknown_ones_are_refused():
    q = make_strategy(
        "qlearning", BitSpace(), seed=0, budget=40, batch=4, preset="paper", alpha=0.5
    )
    assert (q.alpha, q.per_visit, q.replay) == (0.5, False, 64)
    with pytest.raises(ValueError, match="preset 'fast'"):
        make_strategy("qlearning", BitSpace(), seed=0, budget=40, batch=4, preset="fast")
    with pytest.raises(TypeError, match="alpah"):
        make_strategy("qlearning", BitSpace(), seed=0, budget=40, batch=4, alpah=0.5)
    with pytest.raises(ValueError, match="alpha must be a number"):
        make_strategy("qlearning", BitSpace(), seed=0, budget=40, batch=4, alpha="abc")


def test_per_visit_rate_makes_q_the_mean_of_its_targets():
    q = agent(BitSpace(depth=1, width=2), preset="default", replay=0)
    for reward in (80.0, 40.0, 60.0):
        q.tell((1,), reward)
    assert q.q((), 1) == pytest.approx(0.6)  # (0.8 + 0.4 + 0.6) / 3; the paper's would be ~0.51


def dedupe_drive(strategy, n: int) -> tuple[list[str], int]:
    """Ask until ``n`` distinct (non-isomorphic) proposals were told, re-proposals answered
    as duplicates as the search loop does; returns the proposals and the number of
    duplicate answers."""
    seen: dict[str, float] = {}
    proposed, duplicates = [], 0
    while len(seen) < n and strategy.repeats < 2 * strategy.max_repeats:
        arch = strategy.ask()
        key = strategy.space.key(arch)
        proposed.append(strategy.space.format(arch))
        if key in seen:
            strategy.tell(arch, seen[key], duplicate=True)
            duplicates += 1
        else:
            seen[key] = reward_of(strategy.space, arch)
            strategy.tell(arch, seen[key])
    return proposed, duplicates


@pytest.mark.parametrize("name", NAMES)
def test_duplicate_answers_teach_but_do_not_count(name):
    space = BitSpace(depth=3, width=5)  # 125 architectures
    strategy = make_strategy(name, space, seed=7, budget=120, batch=8)
    proposed, duplicates = dedupe_drive(strategy, 100)
    assert duplicates > 0 and len(set(proposed)) == 100
    assert strategy.tells == 100 and strategy.iteration == 100 // 8


def test_an_isomorphic_duplicate_on_its_own_path_survives_a_round_trip():
    # the same block numbered differently: its own (state, action) entries in Q
    space = NSCSpace(max_index=6)
    first = nsc.parse("(1,1,3,0,0) (2,2,3,0,0) (3,6,0,2,1) (4,7,0,0,0)")
    renumbered = nsc.parse("(1,2,3,0,0) (2,1,3,0,0) (3,6,0,2,1) (4,7,0,0,0)")
    assert space.key(first) == space.key(renumbered) and first != renumbered
    q = QLearningStrategy(space, seed=0, budget=10, batch=10)
    q.tell(first, 80.0)
    q.tell(renumbered, 80.0, duplicate=True)
    state = json.loads(json.dumps(q.state_dict()))
    assert state["aliases"] == [space.format(renumbered)]
    resumed = QLearningStrategy(space, seed=0, budget=10, batch=10)
    resumed.load_state_dict(state)
    assert json.dumps(resumed.state_dict()) == json.dumps(state)
    step = space.step(space.initial_state(), renumbered[0])
    assert resumed.q(space.initial_state(), renumbered[0]) == q.q(
        space.initial_state(), renumbered[0]
    )
    assert resumed.q(step, renumbered[1]) == q.q(step, renumbered[1]) > 0.5


def test_a_duplicate_answer_updates_q_without_new_memory_or_replay():
    q = agent(BitSpace(depth=1, width=2), preset="default", replay=5)
    q.tell((1,), 80.0)
    q.tell((1,), 40.0, duplicate=True)
    assert q.q((), 1) == pytest.approx(0.6) and len(q.memory) == 1 and q.tells == 1


def test_repeated_duplicates_force_exploration_then_the_space_is_exhausted():
    space = BitSpace(depth=2, width=3)  # 9 architectures
    greedy = QLearningStrategy(
        space, seed=0, budget=100, batch=100, schedule=EpsilonSchedule.constant(0.0),
        max_repeats=5,
    )  # fmt: skip
    greedy.tell((2, 2), 90.0)
    for count in range(1, 6):  # the greedy proposal, answered as a duplicate five times
        arch = greedy.ask()
        assert arch == (2, 2)
        greedy.tell(arch, 90.0, duplicate=True)
        assert greedy.repeats == count
    explored = set()
    for _ in range(40):  # now random walks for as long as every ask is a duplicate
        explored.add(greedy.ask())
        greedy.tell((2, 2), 90.0, duplicate=True)
    assert len(explored) == 9 and greedy.repeats == 45
    greedy.ask()  # not answered as a duplicate: the streak is over
    assert greedy.repeats == 0 and greedy.ask() == (2, 2)


@pytest.mark.parametrize("space_name", list(SPACES))
@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip_with_duplicate_answers(name, space_name):
    original = build(name, space_name)
    dedupe_drive(original, 30)
    resumed = build(name, space_name)
    resumed.load_state_dict(json.loads(json.dumps(original.state_dict())))
    assert resumed.repeats == original.repeats
    assert dedupe_drive(resumed, 30) == dedupe_drive(original, 30)
