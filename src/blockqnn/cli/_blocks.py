"""Naming a block on the command line: codes, a known name, or ``DIR:topK``."""

from __future__ import annotations

import re

from blockqnn import blocks, nsc
from blockqnn.config import SearchConfig
from blockqnn.search import open_run
from blockqnn.store import Candidate

_TOP = re.compile(r"^(?P<run>.+):top(?P<rank>\d+)$")


def resolve_block(text: str, max_index: int = nsc.DEFAULT_MAX_INDEX) -> nsc.Block:
    """The block ``text`` names: NSC code text, a known block's name (``blocks.KNOWN``), or
    ``DIR:topK``, the K-th best complete candidate (by reward) of the run in ``DIR``.

    Raises NSCError for invalid codes, KeyError for an unknown name, ValueError when the
    run has fewer than K ranked candidates or is not an NSC search, and StoreError when
    ``DIR`` holds no readable run.
    """
    found = parse_top(text)
    if found is None:
        return blocks.resolve(text, max_index)
    candidate, config = ranked_candidate(*found)
    return nsc.parse(candidate.arch, config.max_index)


def parse_top(text: str) -> tuple[str, int] | None:
    """``(DIR, K)`` for text of the form ``DIR:topK``, else None."""
    found = _TOP.match(text.strip())
    return None if found is None else (found["run"], int(found["rank"]))


def ranked_candidate(run_dir: str, rank: int) -> tuple[Candidate, SearchConfig]:
    """The ``rank``-th best complete candidate of an NSC run, and the run's configuration
    (errors as :func:`resolve_block` describes)."""
    if rank < 1:
        raise ValueError(f"{run_dir}:top{rank}: ranks start at 1")
    store, config = open_run(run_dir)
    with store:
        if config.space != "nsc":
            raise ValueError(f"{run_dir} searched the {config.space!r} space, not NSC blocks")
        best = store.top(rank)
    if len(best) < rank:
        raise ValueError(f"{run_dir} has {len(best)} ranked candidate(s); cannot take top{rank}")
    return best[rank - 1], config
