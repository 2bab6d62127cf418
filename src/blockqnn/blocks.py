"""Named known blocks: the paper's exemplars as plain data (like DARTS' ``genotypes.py``).

Only blocks whose codes the paper gives exactly are listed. The searched Block-QNN-A/-B/-S
appear in the paper only as garbled figure text, so they are not shipped.
"""

from __future__ import annotations

from collections.abc import Collection

from blockqnn import nsc
from blockqnn.errors import UserError


class UnknownBlock(KeyError, UserError):
    """No known block has that name; the message lists the known names."""


#: The paper's Fig. 2 exemplars, exactly as printed.
KNOWN: dict[str, str] = {
    "multi_branch": (
        "(1,4,0,0,0) (2,1,1,1,0) (3,1,3,2,0) (4,1,1,1,0) (5,1,5,4,0) "
        "(6,6,0,3,5) (7,2,3,1,0) (8,1,1,7,0) (9,6,0,6,8) (10,7,0,0,0)"
    ),
    "shortcut": "(1,4,0,0,0) (2,1,3,1,0) (3,1,3,2,0) (4,5,0,1,3) (5,7,0,0,0)",
}


def names() -> list[str]:
    """Names of the known blocks, sorted."""
    return sorted(KNOWN)


def get(name: str) -> nsc.Block:
    """The block registered under ``name`` (:class:`UnknownBlock`, a KeyError listing the
    known names, otherwise)."""
    try:
        return nsc.parse(KNOWN[name])
    except KeyError:
        raise UnknownBlock(f"unknown block {name!r}; known blocks: {', '.join(names())}") from None


def resolve(
    text: str,
    max_index: int = nsc.DEFAULT_MAX_INDEX,
    types: Collection[int] = nsc.SEPARATE_TYPES,
) -> nsc.Block:
    """A block from a known name or from code text (raises NSCError for invalid codes, or
    codes of a layer type outside ``types``)."""
    text = text.strip()
    if text and text[0] not in "([":
        return get(text)
    return nsc.parse(text, max_index, types)
