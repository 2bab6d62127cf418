"""Naming a block on the command line: codes, a known name, or ``DIR:topK``."""

from __future__ import annotations

import argparse
import re
from collections.abc import Collection

from blockqnn import blocks, nsc
from blockqnn.config import COMPONENTS
from blockqnn.search import open_run

_TOP = re.compile(r"^(?P<run>.+):top(?P<rank>\d+)$")


def add_components_option(p: argparse.ArgumentParser) -> None:
    """``--components pcc|separate``: the layer types that block codes may use."""
    p.add_argument(
        "--components",
        choices=tuple(COMPONENTS),
        default="pcc",
        help="code space: pcc (the paper's, types 1-7) or separate (adds ReLU 8 and BN 9)",
    )


def resolve_arch(
    text: str, max_index: int = nsc.DEFAULT_MAX_INDEX, types: Collection[int] = nsc.PCC_TYPES
) -> nsc.Block | str:
    """The architecture ``text`` names: NSC code text (layer types limited to ``types``), a
    known block's name (``blocks.KNOWN``), or ``DIR:topK``, the K-th of the run's ranking
    (:func:`blockqnn.store.rank`). A run's own maximum index and code space apply to its
    blocks; a NAS-Bench-201 run gives its cell's arch string.

    Raises NSCError for invalid codes, KeyError for an unknown name, ValueError when the
    run has fewer than K ranked candidates, and StoreError when ``DIR`` holds no readable run.
    """
    found = _TOP.match(text.strip())
    if found is None:
        return blocks.resolve(text, max_index, types)
    run_dir, rank = found["run"], int(found["rank"])
    if rank < 1:
        raise ValueError(f"{run_dir}:top{rank}: ranks start at 1")
    store, config = open_run(run_dir)
    with store:
        best = store.top(rank)
    if len(best) < rank:
        raise ValueError(f"{run_dir} has {len(best)} ranked candidate(s); cannot take top{rank}")
    arch = best[rank - 1].arch
    if config.space != "nsc":
        return arch
    return nsc.parse(arch, config.max_index, COMPONENTS[config.components])


def resolve_block(
    text: str, max_index: int = nsc.DEFAULT_MAX_INDEX, types: Collection[int] = nsc.PCC_TYPES
) -> nsc.Block:
    """The NSC block ``text`` names (see :func:`resolve_arch`), for commands that build a
    network. A NAS-Bench-201 run's cell is refused with ValueError: it was looked up in a
    table and has no network to build here."""
    arch = resolve_arch(text, max_index, types)
    if isinstance(arch, str):
        raise ValueError(
            f"{text} is a NAS-Bench-201 cell ({arch}) from a table look-up search; blockqnn "
            "builds and trains NSC blocks only (draw and export accept NAS-Bench-201 runs)"
        )
    return arch
