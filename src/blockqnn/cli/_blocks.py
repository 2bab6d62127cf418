"""Naming a block on the command line: codes, a known name, ``DIR:topK`` or ``DIR:ID``."""

from __future__ import annotations

import re

from blockqnn import blocks, nsc
from blockqnn.search import open_run
from blockqnn.store import Candidate, RunStore

_FROM_RUN = re.compile(r"^(?P<run>.+):(?:top(?P<rank>\d+)|(?P<id>\d+))$")


def resolve_block(text: str, max_index: int = nsc.DEFAULT_MAX_INDEX) -> nsc.Block:
    """The block ``text`` names: NSC code text, a known block's name (``blocks.KNOWN``),
    ``DIR:topK``, the K-th best complete candidate (by reward) of the run in ``DIR``, or
    ``DIR:ID``, the candidate with id ``ID`` of that run (the report's detail view prints
    this form).

    Raises NSCError for invalid codes, KeyError for an unknown name, ValueError when the
    run has fewer than K ranked candidates or is not an NSC search, and StoreError when
    ``DIR`` holds no readable run or no candidate ``ID``.
    """
    found = _FROM_RUN.match(text.strip())
    if found is None:
        return blocks.resolve(text, max_index)
    run_dir = found["run"]
    store, config = open_run(run_dir)
    with store:
        if config.space != "nsc":
            raise ValueError(f"{run_dir} searched the {config.space!r} space, not NSC blocks")
        if found["rank"] is None:
            candidate = store.get(int(found["id"]))
        else:
            candidate = _ranked(store, run_dir, int(found["rank"]))
    return nsc.parse(candidate.arch, config.max_index)


def _ranked(store: RunStore, run_dir: str, rank: int) -> Candidate:
    """The ``rank``-th best complete candidate of the run (ValueError if there is none)."""
    if rank < 1:
        raise ValueError(f"{run_dir}:top{rank}: ranks start at 1")
    best = store.top(rank)
    if len(best) < rank:
        raise ValueError(f"{run_dir} has {len(best)} ranked candidate(s); cannot take top{rank}")
    return best[rank - 1]
