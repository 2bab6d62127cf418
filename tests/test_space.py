"""The NSC decision process: legal actions, masking, trajectories, mutation."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blockqnn import blocks, nsc
from blockqnn.nsc import Layer, LayerType
from blockqnn.space import NSCSpace, Space, random_walk, walk


def test_nsc_space_implements_the_protocol():
    assert isinstance(NSCSpace(), Space)


def test_actions_from_the_input_state():
    space = NSCSpace()
    acts = space.actions(space.initial_state())
    # index 1, pred 0 only: conv x3 kernels, max/avg pool x2 each, identity; no add/concat
    # (needs two distinct preds), no terminal directly after the input.
    assert len(acts) == 3 + 2 + 2 + 1
    assert all(a.index == 1 and a.pred1 == 0 for a in acts)
    assert LayerType.TERMINAL not in {a.type for a in acts}


def test_action_count_formula_and_pairs():
    space = NSCSpace()
    state = Layer(4, LayerType.CONV, 3, 2, 0)
    acts = space.actions(state)
    j = 5  # next index; preds in 0..4
    assert len(acts) == 8 * j + j * (j - 1) + 1
    pairs = [(a.pred1, a.pred2) for a in acts if a.type == LayerType.ADD]
    assert len(pairs) == len(set(pairs)) == j * (j - 1) // 2
    assert all(p1 > p2 for p1, p2 in pairs)
    assert Layer(5, LayerType.TERMINAL, 0, 0, 0) in acts


def test_only_terminal_at_max_index():
    space = NSCSpace(max_index=5)
    assert space.actions(Layer(4, LayerType.IDENTITY, 0, 3, 0)) == (Layer(5, 7, 0, 0, 0),)
    assert space.actions(Layer(5, 7, 0, 0, 0)) == ()
    assert space.is_terminal(Layer(5, 7, 0, 0, 0))


def test_restricted_types():
    space = NSCSpace(types=[LayerType.CONV])
    types = {a.type for a in space.actions(Layer(3, 1, 3, 2, 0))}
    assert types == {LayerType.CONV, LayerType.TERMINAL}


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**9), st.integers(2, 23))
def test_every_legal_trajectory_validates(seed, max_index):
    space, rng = NSCSpace(max_index=max_index), random.Random(seed)
    taken = walk(space, lambda s, acts: rng.choice(acts))
    block = space.architecture(taken)
    nsc.validate(block, max_index)
    assert len(block) <= max_index
    assert space.trajectory(block) == taken
    assert space.parse(space.format(block)) == block


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 10**9))
def test_mutation_is_one_legal_change(seed):
    space, rng = NSCSpace(max_index=10), random.Random(seed)
    block = space.architecture(walk(space, lambda s, acts: rng.choice(acts)))
    child = space.mutate(block, rng)
    nsc.validate(child, 10)
    assert space.key(child) != space.key(block)
    a, b = nsc.body(block), nsc.body(child)
    changed = sum(x != y for x, y in zip(a, b, strict=False)) + abs(len(a) - len(b))
    assert changed == 1


def test_known_blocks_are_valid_states():
    space = NSCSpace()
    for name in blocks.names():
        block = blocks.get(name)
        state = space.initial_state()
        for layer in block:
            legal = space.actions(state)
            assert len(legal) > 0
            state = space.step(state, layer)
        assert space.is_terminal(state)


def test_max_index_must_allow_a_layer():
    with pytest.raises(ValueError, match="max_index"):
        NSCSpace(max_index=1)


def test_exploration_draws_the_type_first():
    space, rng = NSCSpace(), random.Random(0)
    state = Layer(5, LayerType.CONV, 3, 2, 0)
    draws = [space.sample(state, space.actions(state), rng).type for _ in range(7000)]
    # 7 legal types at index 6 -> each about 1/7, although add/concat have 15 actions each
    # and the terminal only one
    for t in LayerType:
        if t in nsc.PCC_TYPES:
            assert 800 < draws.count(t) < 1200, (t, draws.count(t))
    lengths = [len(space.architecture(random_walk(space, rng))) for _ in range(300)]
    assert 4 < sum(lengths) / len(lengths) < 12  # small blocks, as the paper's Fig. 12


def test_sample_from_a_subset_stays_in_it():
    space, rng = NSCSpace(), random.Random(1)
    state = Layer(3, LayerType.CONV, 3, 2, 0)
    subset = [a for a in space.actions(state) if a.type == LayerType.ADD][:3]
    assert all(space.sample(state, subset, rng) in subset for _ in range(50))
