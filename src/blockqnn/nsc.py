"""Network Structure Codes: the layer record, parsing, formatting, validation, canonical keys.

A block is a tuple of :class:`Layer` 5-tuples ``(index, type, kernel, pred1, pred2)``
numbered 1..n and ending in a terminal layer. Predecessor 0 is the block input. Only add
and concat take two predecessors; every other layer has ``pred2 = 0`` ("none").

This module is pure Python: it never imports torch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Sequence
from enum import IntEnum
from typing import NamedTuple

from blockqnn._canon import canonical_rows
from blockqnn.errors import UserError

DEFAULT_MAX_INDEX = 23


class LayerType(IntEnum):
    """The seven layer types of the paper's Table 1, plus the separate ReLU and batch-norm
    components of the paper's Fig. 9 ablation (where a convolution is a bare Conv)."""

    CONV = 1
    MAX_POOL = 2
    AVG_POOL = 3
    IDENTITY = 4
    ADD = 5
    CONCAT = 6
    TERMINAL = 7
    RELU = 8
    BATCH_NORM = 9


#: The paper's code space (Table 1): convolutions are PCCs (ReLU -> Conv -> BN).
PCC_TYPES = tuple(LayerType)[:7]
#: The Fig. 9 ablation's code space: ReLU, BN and Conv chosen separately.
SEPARATE_TYPES = tuple(LayerType)
#: Types that exist only in the separate-components space.
COMPONENT_TYPES = frozenset(SEPARATE_TYPES) - frozenset(PCC_TYPES)


#: Kernel sizes each layer type may take.
KERNELS: dict[LayerType, tuple[int, ...]] = {
    LayerType.CONV: (1, 3, 5),
    LayerType.MAX_POOL: (1, 3),
    LayerType.AVG_POOL: (1, 3),
    LayerType.IDENTITY: (0,),
    LayerType.ADD: (0,),
    LayerType.CONCAT: (0,),
    LayerType.TERMINAL: (0,),
    LayerType.RELU: (0,),
    LayerType.BATCH_NORM: (0,),
}

#: Layer types that merge two predecessors.
TWO_INPUT = frozenset({LayerType.ADD, LayerType.CONCAT})

#: Short labels in the paper's figure style.
LABELS: dict[LayerType, str] = {
    LayerType.CONV: "Conv",
    LayerType.MAX_POOL: "MaxP",
    LayerType.AVG_POOL: "AvgP",
    LayerType.IDENTITY: "Identity",
    LayerType.ADD: "Add",
    LayerType.CONCAT: "Concat",
    LayerType.TERMINAL: "Terminal",
    LayerType.RELU: "ReLU",
    LayerType.BATCH_NORM: "BN",
}


class NSCError(ValueError, UserError):
    """An invalid code or block. ``layer`` is the offending layer index (None if global)."""

    def __init__(self, message: str, layer: int | None = None) -> None:
        prefix = f"layer {layer}: " if layer is not None else ""
        super().__init__(prefix + message)
        self.layer = layer


class Layer(NamedTuple):
    """One Network Structure Code."""

    index: int
    type: int
    kernel: int
    pred1: int
    pred2: int

    @property
    def preds(self) -> tuple[int, ...]:
        """The predecessors this layer reads (one or two; none for a terminal)."""
        if self.type == LayerType.TERMINAL:
            return ()
        if self.type in TWO_INPUT:
            return (self.pred1, self.pred2)
        return (self.pred1,)

    def label(self) -> str:
        """Figure label such as ``Conv,3`` or ``Add``."""
        name = LABELS[LayerType(self.type)]
        if self.type in (LayerType.CONV, LayerType.MAX_POOL, LayerType.AVG_POOL):
            return f"{name},{self.kernel}"
        return name


Block = tuple[Layer, ...]

_TUPLE = re.compile(r"\(([^()]*)\)")


def parse(
    text: str, max_index: int = DEFAULT_MAX_INDEX, types: Collection[int] = SEPARATE_TYPES
) -> Block:
    """Parse and validate a block from NSC text or JSON.

    Accepts ``"(1,4,0,0,0) (2,1,3,1,0) ..."`` (spaces and/or commas between tuples,
    optional surrounding brackets) or a JSON list of 5-lists. ``types`` are the layer types
    allowed (see :func:`validate`). Raises :class:`NSCError`.
    """
    text = text.strip()
    if not text:
        raise NSCError("empty block text")
    if text.startswith("[") and "(" not in text:
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise NSCError(f"invalid JSON: {exc}") from None
        return from_rows(rows, max_index, types)
    inner = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    rows, leftover = [], _TUPLE.sub("", inner)
    if leftover.replace(",", "").strip():
        raise NSCError(f"unexpected text outside the tuples: {leftover.strip()!r}")
    for body in _TUPLE.findall(inner):
        try:
            rows.append([int(x) for x in body.split(",")])
        except ValueError:
            raise NSCError(f"tuple ({body}) must hold five integers") from None
    return from_rows(rows, max_index, types)


def from_rows(
    rows: Iterable[Sequence[int]],
    max_index: int = DEFAULT_MAX_INDEX,
    types: Collection[int] = SEPARATE_TYPES,
) -> Block:
    """Build and validate a block from a sequence of 5-sequences of integers."""
    if not isinstance(rows, list | tuple):
        raise NSCError("a block must be a list of 5-element codes")
    layers = []
    for pos, row in enumerate(rows, start=1):
        if not isinstance(row, list | tuple) or len(row) != 5:
            raise NSCError(f"code number {pos} must have exactly 5 integers, got {row!r}")
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in row):
            raise NSCError(f"code number {pos} must hold integers, got {row!r}")
        layers.append(Layer(*row))
    block = tuple(layers)
    validate(block, max_index, types)
    return block


def as_block(
    codes: str | Sequence[Sequence[int]],
    max_index: int = DEFAULT_MAX_INDEX,
    types: Collection[int] = SEPARATE_TYPES,
) -> Block:
    """A validated block from code text or from a sequence of codes."""
    if isinstance(codes, str):
        return parse(codes, max_index, types)
    return from_rows([tuple(layer) for layer in codes], max_index, types)


def format_block(block: Sequence[Layer]) -> str:
    """Format a block as ``"(1,4,0,0,0) (2,1,3,1,0) ..."``; inverse of :func:`parse`."""
    return " ".join("(" + ",".join(str(int(x)) for x in layer) + ")" for layer in block)


def to_json(block: Sequence[Layer]) -> str:
    """Format a block as a JSON list of 5-lists; inverse of :func:`parse`."""
    return json.dumps([[int(x) for x in layer] for layer in block])


def validate_layer(
    layer: Layer, max_index: int = DEFAULT_MAX_INDEX, types: Collection[int] = SEPARATE_TYPES
) -> None:
    """Check one code in isolation (type, kernel, predecessors). Raises :class:`NSCError`.

    ``types`` are the layer types allowed besides the terminal: every type of the grammar
    by default, ``PCC_TYPES`` for the paper's space.
    """
    i = layer.index
    if i < 1 or i > max_index:
        raise NSCError(f"index {i} outside 1..{max_index} (the maximum layer index)", i)
    try:
        kind = LayerType(layer.type)
    except ValueError:
        raise NSCError(f"unknown layer type {layer.type} (types are 1..9)", i) from None
    if kind != LayerType.TERMINAL and kind not in types:
        raise NSCError(_type_refusal(kind, types), i)
    if layer.kernel not in KERNELS[kind]:
        allowed = ", ".join(map(str, KERNELS[kind]))
        raise NSCError(f"kernel {layer.kernel} not allowed for {kind.name} ({allowed})", i)
    if kind == LayerType.TERMINAL:
        if layer.pred1 or layer.pred2:
            raise NSCError("a terminal takes no predecessors (pred1 = pred2 = 0)", i)
        return
    for name, pred in (("pred1", layer.pred1), ("pred2", layer.pred2)):
        if not 0 <= pred < i:
            raise NSCError(f"{name} {pred} is not an earlier layer (must be in 0..{i - 1})", i)
    if kind in TWO_INPUT:
        if layer.pred1 == layer.pred2:
            raise NSCError(
                f"{kind.name} needs two different predecessors, got {layer.pred1} twice", i
            )
    elif layer.pred2 != 0:
        raise NSCError(f"{kind.name} takes one predecessor, but pred2 = {layer.pred2}", i)


def _type_refusal(kind: LayerType, types: Collection[int]) -> str:
    allowed = ", ".join(str(int(t)) for t in sorted(types))
    message = f"type {int(kind)} ({kind.name}) is not in this space (allowed types: {allowed})"
    if kind in COMPONENT_TYPES:
        message += "; ReLU (8) and BN (9) codes exist only with separate components"
    return message


def validate(
    block: Sequence[Layer],
    max_index: int = DEFAULT_MAX_INDEX,
    types: Collection[int] = SEPARATE_TYPES,
) -> None:
    """Check a whole block; raise :class:`NSCError` naming the layer and the broken rule.

    ``types``: the layer types allowed (see :func:`validate_layer`).
    """
    if not block:
        raise NSCError("a block needs at least one layer and a terminal")
    for pos, layer in enumerate(block, start=1):
        if layer.index != pos:
            raise NSCError(f"indices must run 1..n in order; expected {pos} here", layer.index)
        validate_layer(layer, max_index, types)
        if layer.type == LayerType.TERMINAL and pos != len(block):
            raise NSCError("layer after the terminal (the terminal must come last)", pos + 1)
    last = block[-1]
    if last.type != LayerType.TERMINAL:
        raise NSCError("no terminal: the last code must be (n,7,0,0,0)", last.index)
    if len(block) == 1:
        raise NSCError("a terminal directly after the input leaves an empty block", 1)


def body(block: Sequence[Layer]) -> Block:
    """The block without its terminal: the layers that compute something."""
    return tuple(layer for layer in block if layer.type != LayerType.TERMINAL)


def leaves(block: Sequence[Layer]) -> list[int]:
    """Indices of non-terminal layers without a successor; they form the block output."""
    layers = body(block)
    used = {p for layer in layers for p in layer.preds}
    return [layer.index for layer in layers if layer.index not in used]


def density(block: Sequence[Layer]) -> float:
    """Edges / nodes of the block DAG (docs/design.md section 1).

    Nodes: the input, every non-terminal layer, the output. Edges: every predecessor link
    plus one link from each leaf to the output.
    """
    layers = body(block)
    edges = sum(len(layer.preds) for layer in layers) + len(leaves(block))
    return edges / (len(layers) + 2)


def canonical_key(block: Sequence[Layer]) -> str:
    """A string equal for two blocks exactly when they are the same DAG up to renumbering.

    Add and concat inputs are unordered. The key is itself a valid block text: the
    lexicographically smallest renumbering found by colour refinement, branching only on
    ties between nodes that are not interchangeable twins.
    """
    return format_block([Layer(*row) for row in canonical_rows(body(block))])
