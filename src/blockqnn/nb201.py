"""The NAS-Bench-201 (NATS-Bench topology) cell space as a decision process.

A cell is a DAG on 4 nodes; node 0 is the cell input and every node ``j`` takes one edge
from each earlier node, so there are 6 edges, listed in the canonical order of the
benchmark's architecture string::

    |op~0|+|op~0|op~1|+|op~0|op~1|op~2|
     1<-0    2<-0 2<-1    3<-0 3<-1 3<-2

Each edge carries one of the 5 operations of :data:`OPS`, so the space holds
``5 ** 6 = 15,625`` cells. An architecture *is* its canonical string (the tables call the
column ``arch_str`` or ``ArchitectureString``; the strings have the same format), so
``format``/``parse`` are the identity plus validation and ``key`` is the string itself.

Decision process (in analogy with the NSC space, whose state is the current layer): the
agent decides edge 1, then edge 2, ... edge 6. A state is ``(t, op)``: the index of the
edge just decided and its operation; the initial state is ``(0, None)`` and a state is
terminal when ``t == 6``. The actions from ``(t, _)`` are ``(t + 1, op)`` for each op.

This module is pure Python: it never imports torch.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence

from blockqnn.errors import UserError

#: The operations an edge may take, in the benchmark's order.
OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")

#: The edges as ``(to_node, from_node)``, in the canonical order of the arch string.
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))

NUM_NODES = 4
NUM_EDGES = len(EDGES)

State = tuple[int, str | None]
Action = tuple[int, str]


class NB201Error(ValueError, UserError):
    """An invalid NAS-Bench-201 architecture string or trajectory; the message says why."""


def format_ops(ops: Sequence[str]) -> str:
    """The canonical arch string of the 6 edge operations ``ops`` (in :data:`EDGES` order).

    Raises :class:`NB201Error` for a wrong number of operations or an unknown operation.
    """
    if len(ops) != NUM_EDGES:
        raise NB201Error(f"a cell has {NUM_EDGES} edges, got {len(ops)} operations")
    for op in ops:
        _check_op(op)
    nodes = []
    for node in range(1, NUM_NODES):
        edges = [f"{op}~{src}" for op, (dst, src) in zip(ops, EDGES, strict=True) if dst == node]
        nodes.append("|" + "|".join(edges) + "|")
    return "+".join(nodes)


@functools.lru_cache(maxsize=2 * 5**6)
def parse_ops(text: str) -> tuple[str, ...]:
    """The 6 edge operations (in :data:`EDGES` order) of an arch string (cached: a search
    parses every proposal several times).

    Surrounding whitespace is ignored. Raises :class:`NB201Error` naming the problem: wrong
    number of nodes or edges, an unknown operation, or an input index out of canonical order.
    """
    text = text.strip()
    if not text:
        raise NB201Error("empty architecture string")
    parts = text.split("+")
    if len(parts) != NUM_NODES - 1:
        raise NB201Error(
            f"expected {NUM_NODES - 1} nodes separated by '+', got {len(parts)} in {text!r}"
        )
    ops: list[str] = []
    for node, part in enumerate(parts, start=1):
        ops += _parse_node(node, part)
    return tuple(ops)


@functools.lru_cache(maxsize=2 * 5**6)
def canonical(text: str) -> str:
    """The canonical arch string of ``text`` (:class:`NB201Error` if it is not one);
    cached, as a search formats, keys and parses every proposal."""
    return format_ops(parse_ops(text))


def _parse_node(node: int, part: str) -> list[str]:
    if len(part) < 2 or not part.startswith("|") or not part.endswith("|"):
        raise NB201Error(f"node {node}: {part!r} must be enclosed in '|'")
    edges = part[1:-1].split("|")
    if len(edges) != node:
        raise NB201Error(f"node {node} must have {node} input edge(s), got {len(edges)}: {part!r}")
    return [_parse_edge(node, src, edge) for src, edge in enumerate(edges)]


def _parse_edge(node: int, src: int, edge: str) -> str:
    op, sep, index = edge.partition("~")
    if not sep:
        raise NB201Error(f"node {node}: edge {edge!r} must be written 'op~input'")
    _check_op(op)
    if index != str(src):
        raise NB201Error(
            f"node {node}: edge {edge!r} has input index {index!r}, expected {src} "
            f"(a node lists its inputs 0..{node - 1} in order)"
        )
    return op


def _check_op(op: str) -> None:
    if op not in OPS:
        raise NB201Error(f"unknown operation {op!r} (operations are {', '.join(OPS)})")


_ACTIONS: tuple[tuple[Action, ...], ...] = tuple(
    tuple((t, op) for op in OPS) for t in range(1, NUM_EDGES + 1)
)


class NB201Space:
    """The NAS-Bench-201 cell space; implements :class:`blockqnn.space.Space`.

    States and actions are plain tuples (see the module docstring); actions that went
    through JSON (lists) are accepted wherever an action is expected.
    """

    name = "nb201"
    #: distinct architectures (canonical keys): every cell is its own key
    distinct = len(OPS) ** NUM_EDGES

    def initial_state(self) -> State:
        return (0, None)

    def actions(self, state: State) -> tuple[Action, ...]:
        t = state[0]
        return () if t >= NUM_EDGES else _ACTIONS[t]

    def sample(self, state: State, actions: Sequence[Action], rng: random.Random) -> Action:
        """Uniform among the legal actions (the five operations)."""
        return rng.choice(actions)

    def step(self, state: State, action: Action) -> State:
        """The state after ``action``; raises :class:`NB201Error` if it is not legal here."""
        action = tuple(action)
        if action not in self.actions(state):
            raise NB201Error(f"action {action!r} is not legal from state {tuple(state)!r}")
        return action

    def is_terminal(self, state: State) -> bool:
        return state[0] == NUM_EDGES

    def architecture(self, actions: Sequence[Action]) -> str:
        """The arch string of a complete trajectory (6 actions deciding edges 1..6)."""
        if len(actions) != NUM_EDGES:
            raise NB201Error(f"a trajectory has {NUM_EDGES} actions, got {len(actions)}")
        ops = []
        for position, (t, op) in enumerate(actions, start=1):
            if t != position:
                raise NB201Error(f"action number {position} decides edge {t}, not {position}")
            ops.append(op)
        return format_ops(ops)

    def trajectory(self, arch: str) -> list[Action]:
        return [(t, op) for t, op in enumerate(parse_ops(arch), start=1)]

    def key(self, arch: str) -> str:
        """The canonical arch string (benchmark tables list each one once)."""
        return canonical(arch)

    def format(self, arch: str) -> str:
        return canonical(arch)

    def parse(self, text: str) -> str:
        """The canonical arch string of ``text``; raises :class:`NB201Error` (a ValueError)."""
        return canonical(text)

    def mutate(self, arch: str, rng: random.Random) -> str:
        """Change the operation of exactly one edge to a different one (Real et al. 2019)."""
        ops = list(parse_ops(arch))
        edge = rng.randrange(NUM_EDGES)
        ops[edge] = rng.choice([op for op in OPS if op != ops[edge]])
        return format_ops(ops)
