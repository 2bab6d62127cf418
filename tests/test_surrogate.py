"""The Q agent's learned model of the reward: its features, its fit, how the agent uses it
to choose among its policy's proposals, and its state across a resume (exact)."""

from __future__ import annotations

import json
import random

import pytest

from blockqnn import nsc
from blockqnn.nb201 import OPS, NB201Space, format_ops
from blockqnn.space import NSCSpace
from blockqnn.strategies import QLearningStrategy, make_strategy
from blockqnn.strategies.surrogate import RidgeSurrogate, featurizer, nsc_features

from .test_strategies import SPACES, BitSpace, drive

#: An additive reward on NB201 cells: each edge's operation adds its worth.
WORTH = {op: 10.0 * i for i, op in enumerate(OPS)}


def additive(arch: str) -> float:
    return sum(WORTH[op] * (edge + 1) for edge, op in enumerate(arch_ops(arch)))


def arch_ops(arch: str) -> list[str]:
    return [op for _, op in NB201Space().trajectory(arch)]


def random_cells(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [format_ops([rng.choice(OPS) for _ in range(6)]) for _ in range(n)]


def test_nb201_features_are_one_indicator_per_edge_and_operation():
    features = featurizer(NB201Space())(format_ops(["none", "skip_connect", *["none"] * 4]))
    assert features == {
        ("step", 0, (1, "none")): 1.0,
        ("step", 1, (2, "skip_connect")): 1.0,
        **{("step", t, (t + 1, "none")): 1.0 for t in range(2, 6)},
    }


def test_nsc_features_count_operations_depth_outputs_and_merges():
    block = nsc.parse("(1,1,3,0,0) (2,1,3,1,0) (3,2,3,0,0) (4,5,0,2,3) (5,7,0,0,0)")
    assert featurizer(NSCSpace()) is nsc_features
    assert nsc_features(block) == {
        ("at", 1, 1, 3): 1.0,
        ("at", 2, 1, 3): 1.0,
        ("at", 3, 2, 3): 1.0,
        ("at", 4, 5, 0): 1.0,
        ("op", 1, 3): 2.0,  # two 3x3 convolutions
        ("op", 2, 3): 1.0,
        ("op", 5, 0): 1.0,
        ("depth", 4): 1.0,
        ("outputs", 1): 1.0,  # only the add is read by no layer
        ("two-input", 1): 1.0,
    }


def test_the_fit_recovers_an_additive_reward_and_ranks_unseen_cells():
    model = RidgeSurrogate(featurizer(NB201Space()), ridge=1e-3)
    for arch in random_cells(80, seed=0):
        model.add(arch, additive(arch))
    unseen = random_cells(40, seed=1)
    means, spreads = model.predict(unseen)
    assert means == pytest.approx([additive(a) for a in unseen], abs=0.5)
    assert all(0 < s < 1 for s in spreads)  # an exact fit: little noise left
    # a model without results is maximally unsure
    assert RidgeSurrogate(featurizer(NB201Space())).predict(unseen[:1]) == ([0.0], [float("inf")])


def test_the_floor_raises_targets_below_the_quantile():
    model = RidgeSurrogate(lambda arch: {("x", arch): 1.0}, ridge=1e-9, floor=0.5)
    for arch, reward in enumerate([10.0, 20.0, 70.0, 80.0]):
        model.add(arch, reward)
    # targets 45, 45, 70, 80 (the median is 45): the failures are one level, not two
    assert model.predict([0, 1, 2, 3])[0] == pytest.approx([45.0, 45.0, 70.0, 80.0])


def test_the_agent_returns_the_best_scored_of_its_proposals_and_prefers_new_ones():
    space = NB201Space()
    q = QLearningStrategy(space, seed=0, budget=200, batch=10, proposals=16)
    for arch in random_cells(60, seed=2):
        q.tell(arch, additive(arch))
    state = q._rng.getstate()
    chosen = q.ask()
    # the same 16 walks, scored by the model: the agent took the best new one
    q._rng.setstate(state)
    walks = [q._walk() for _ in range(16)]
    fresh = [w for w in walks if w not in {a for a, _ in q.memory}]
    means, _ = q.surrogate.predict(fresh)
    assert chosen == fresh[means.index(max(means))]
    assert chosen not in {a for a, _ in q.memory}


def test_the_model_improves_the_search_on_an_additive_reward():
    def best_found(proposals: int, seed: int) -> float:
        q = QLearningStrategy(NB201Space(), seed=seed, budget=60, batch=3, proposals=proposals)
        rewards = []
        for _ in range(60):
            arch = q.ask()
            rewards.append(additive(arch))
            q.tell(arch, rewards[-1])
        return max(rewards)

    plain = sum(best_found(1, seed) for seed in range(10))
    modelled = sum(best_found(16, seed) for seed in range(10))
    assert modelled > plain


@pytest.mark.parametrize("space_name", list(SPACES))
def test_the_model_and_the_proposals_survive_a_round_trip_exactly(space_name):
    def build() -> QLearningStrategy:
        space = SPACES[space_name]()
        return make_strategy(
            "qlearning", space, seed=3, budget=120, batch=8, proposals=8, ucb=1.0, floor=0.25
        )

    original = build()
    drive(original, 50, seed=1)
    resumed = build()
    resumed.load_state_dict(json.loads(json.dumps(original.state_dict())))
    assert resumed.surrogate.weights() == original.surrogate.weights()  # the same fit, exactly
    probe = [arch for arch, _ in original.memory[:5]]
    assert resumed.surrogate.predict(probe) == original.surrogate.predict(probe)
    assert drive(resumed, 50, seed=2) == drive(original, 50, seed=2)
    assert resumed.surrogate.weights() == original.surrogate.weights()


def test_the_model_is_recorded_in_the_config_only_when_on():
    plain = QLearningStrategy(BitSpace(), seed=0, budget=40, batch=4, proposals=1)
    assert plain.surrogate is None and "proposals" not in plain.config
    modelled = QLearningStrategy(BitSpace(), seed=0, budget=40, batch=4, proposals=4, floor=0.0)
    assert {k: modelled.config[k] for k in ("proposals", "ucb", "floor")} == {
        "proposals": 4,
        "ucb": 0.0,
        "floor": 0.0,
    }
    with pytest.raises(ValueError, match="different config: floor, proposals, ucb"):
        plain.load_state_dict(modelled.state_dict())
    for bad in ({"proposals": 0}, {"ucb": -1.0}, {"floor": 1.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            QLearningStrategy(BitSpace(), seed=0, budget=40, batch=4, **bad)


def test_the_default_agent_has_the_model_and_random_search_and_the_paper_do_not():
    def build(name: str, **options) -> QLearningStrategy:
        return make_strategy(name, NB201Space(), seed=0, budget=40, batch=4, **options)

    assert build("qlearning").surrogate is not None
    assert build("qlearning").proposals == 128
    assert build("random").surrogate is None
    assert build("qlearning", preset="paper").surrogate is None
