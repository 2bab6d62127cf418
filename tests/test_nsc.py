"""Codes: parsing, formatting, validation rules, density, canonical keys."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blockqnn import blocks, nsc
from blockqnn.nsc import Layer, NSCError
from blockqnn.space import NSCSpace, walk

SHORTCUT = blocks.KNOWN["shortcut"]


def test_text_round_trip_exact():
    for text in blocks.KNOWN.values():
        block = nsc.parse(text)
        assert nsc.format_block(block) == text
        assert nsc.parse(nsc.format_block(block)) == block


def test_separators_and_brackets_are_accepted():
    expected = nsc.parse(SHORTCUT)
    assert nsc.parse(SHORTCUT.replace(" ", ", ")) == expected
    assert nsc.parse("[" + SHORTCUT.replace(" ", ",") + "]") == expected
    assert nsc.parse("(1, 4, 0, 0, 0)(2,1,3,1,0) (3,1,3,2,0),(4,5,0,1,3) (5,7,0,0,0)") == expected


def test_json_round_trip():
    block = nsc.parse(blocks.KNOWN["multi_branch"])
    text = nsc.to_json(block)
    assert json.loads(text)[5] == [6, 6, 0, 3, 5]
    assert nsc.parse(text) == block


@pytest.mark.parametrize(
    ("text", "layer", "rule"),
    [
        ("(1,10,0,0,0) (2,7,0,0,0)", 1, "unknown layer type 10"),
        ("(1,1,2,0,0) (2,7,0,0,0)", 1, "kernel 2 not allowed for CONV"),
        ("(1,2,5,0,0) (2,7,0,0,0)", 1, "kernel 5 not allowed for MAX_POOL"),
        ("(1,4,3,0,0) (2,7,0,0,0)", 1, "kernel 3 not allowed for IDENTITY"),
        ("(1,4,0,0,0) (2,1,3,2,0) (3,7,0,0,0)", 2, "pred1 2 is not an earlier layer"),
        ("(1,4,0,0,0) (2,1,3,1,1) (3,7,0,0,0)", 2, "takes one predecessor, but pred2 = 1"),
        ("(1,4,0,0,0) (2,5,0,1,1) (3,7,0,0,0)", 2, "two different predecessors, got 1 twice"),
        ("(1,6,0,0,0) (2,7,0,0,0)", 1, "two different predecessors, got 0 twice"),
        ("(1,4,0,0,0) (2,5,0,1,3) (3,7,0,0,0)", 2, "pred2 3 is not an earlier layer"),
        ("(1,4,0,0,0) (3,1,3,1,0) (4,7,0,0,0)", 3, "indices must run 1..n in order"),
        ("(2,4,0,0,0) (3,7,0,0,0)", 2, "indices must run 1..n in order"),
        ("(1,4,0,0,0) (2,1,3,1,0)", 2, "no terminal"),
        ("(1,4,0,0,0) (2,7,0,0,0) (3,1,3,1,0)", 3, "layer after the terminal"),
        ("(1,7,0,0,0)", 1, "terminal directly after the input"),
        ("(1,4,0,0,0) (2,7,0,1,0)", 2, "a terminal takes no predecessors"),
    ],
)
def test_each_rule_names_layer_and_rule(text, layer, rule):
    with pytest.raises(NSCError) as info:
        nsc.parse(text)
    assert info.value.layer == layer
    assert str(info.value).startswith(f"layer {layer}: ")
    assert rule in str(info.value)


def test_index_beyond_maximum_is_configurable():
    chain = " ".join(f"({i},4,0,{i - 1},0)" for i in range(1, 24)) + " (24,7,0,0,0)"
    with pytest.raises(NSCError, match=r"layer 24: index 24 outside 1\.\.23"):
        nsc.parse(chain)
    assert len(nsc.parse(chain, max_index=30)) == 24
    with pytest.raises(NSCError, match=r"layer 5: index 5 outside 1\.\.4"):
        nsc.parse(blocks.KNOWN["shortcut"], max_index=4)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("(1,4,0,0) (2,7,0,0,0)", "exactly 5 integers"),
        ("(1,4,0,0,x) (2,7,0,0,0)", "five integers"),
        ("hello (1,4,0,0,0)", "outside the tuples"),
        ("[[1,4,0,0,0], [2,7,0,0]]", "code number 2 must have exactly 5"),
        ("[[1,4,0,0,0], ", "invalid JSON"),
        ('[[1,4,0,0,0], [2,7,0,0,"0"]]', "must hold integers"),
    ],
)
def test_malformed_text(text, message):
    with pytest.raises(NSCError, match=message):
        nsc.parse(text)


def test_density_of_fig2_blocks_by_hand():
    # shortcut: nodes = input + 4 layers + output = 6; edges = 1 (identity) + 1 + 1 + 2 (add)
    # + 1 (leaf 4 -> output) = 6.
    assert nsc.density(blocks.get("shortcut")) == pytest.approx(6 / 6)
    # multi_branch: nodes = input + 9 layers + output = 11; predecessor links: seven one-input
    # layers + two concats x 2 = 11, plus the single leaf (layer 9) -> output: 12 edges.
    assert nsc.leaves(blocks.get("multi_branch")) == [9]
    assert nsc.density(blocks.get("multi_branch")) == pytest.approx(12 / 11)


def test_leaves_and_density_with_several_leaves():
    block = nsc.parse("(1,1,3,0,0) (2,2,3,0,0) (3,1,1,1,0) (4,7,0,0,0)")
    assert nsc.leaves(block) == [2, 3]
    assert nsc.density(block) == pytest.approx((3 + 2) / 5)


def renumber(block: nsc.Block, rng: random.Random) -> nsc.Block:
    """A random topological renumbering of the same DAG (add/concat inputs maybe swapped)."""
    layers = nsc.body(block)
    preds = {layer.index: layer.preds for layer in layers}
    placed, order = {0: 0}, []
    while len(order) < len(layers):
        ready = [i for i in preds if i not in placed and all(p in placed for p in preds[i])]
        pick = rng.choice(ready)
        placed[pick] = len(order) + 1
        order.append(pick)
    out = []
    for new, old in enumerate(order, start=1):
        layer = layers[old - 1]
        ps = [placed[p] for p in layer.preds]
        rng.shuffle(ps)
        ps = (ps + [0])[:2]
        out.append(Layer(new, layer.type, layer.kernel, ps[0], ps[1]))
    out.append(Layer(len(out) + 1, 7, 0, 0, 0))
    return tuple(out)


def random_block(seed: int, max_index: int = 12) -> nsc.Block:
    space, rng = NSCSpace(max_index=max_index), random.Random(seed)
    return space.architecture(walk(space, lambda s, acts: rng.choice(acts)))


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 10**9), st.integers(0, 10**9))
def test_isomorphic_blocks_share_a_key(seed, perm_seed):
    block = random_block(seed)
    other = renumber(block, random.Random(perm_seed))
    nsc.validate(other)
    assert nsc.canonical_key(other) == nsc.canonical_key(block)
    # the key is itself a valid block, isomorphic to the original
    key_block = nsc.parse(nsc.canonical_key(block))
    assert nsc.canonical_key(key_block) == nsc.canonical_key(block)


def test_fig2_renumbered_by_hand_shares_key():
    # multi_branch with its branches listed in another order and the concat inputs swapped
    other = nsc.parse(
        "(1,4,0,0,0) (2,2,3,1,0) (3,1,1,2,0) (4,1,1,1,0) (5,1,5,4,0) (6,1,1,1,0) "
        "(7,1,3,6,0) (8,6,0,5,7) (9,6,0,3,8) (10,7,0,0,0)"
    )
    assert nsc.canonical_key(other) == nsc.canonical_key(blocks.get("multi_branch"))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        # different kernel
        ("(1,1,3,0,0) (2,7,0,0,0)", "(1,1,5,0,0) (2,7,0,0,0)"),
        # max vs average pooling
        ("(1,2,3,0,0) (2,7,0,0,0)", "(1,3,3,0,0) (2,7,0,0,0)"),
        # a chain vs two parallel branches
        ("(1,1,3,0,0) (2,1,3,1,0) (3,7,0,0,0)", "(1,1,3,0,0) (2,1,3,0,0) (3,7,0,0,0)"),
        # shared vs duplicated sub-expression feeding an add
        (
            "(1,1,3,0,0) (2,1,1,1,0) (3,1,5,1,0) (4,5,0,3,2) (5,7,0,0,0)",
            "(1,1,3,0,0) (2,1,3,0,0) (3,1,1,1,0) (4,1,5,2,0) (5,5,0,4,3) (6,7,0,0,0)",
        ),
        # same multiset of layers, different wiring: leaves differ
        (
            "(1,1,3,0,0) (2,1,3,0,0) (3,1,1,1,0) (4,1,1,2,0) (5,7,0,0,0)",
            "(1,1,3,0,0) (2,1,3,0,0) (3,1,1,1,0) (4,1,1,1,0) (5,7,0,0,0)",
        ),
    ],
)
def test_different_blocks_have_different_keys(a, b):
    assert nsc.canonical_key(nsc.parse(a)) != nsc.canonical_key(nsc.parse(b))


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 10**9), st.integers(0, 10**9))
def test_equal_keys_imply_equal_structure_counts(seed_a, seed_b):
    a, b = random_block(seed_a, 6), random_block(seed_b, 6)
    if nsc.canonical_key(a) == nsc.canonical_key(b):
        assert sorted((x.type, x.kernel) for x in a) == sorted((x.type, x.kernel) for x in b)
        assert nsc.density(a) == nsc.density(b)
