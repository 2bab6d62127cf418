"""Naming a block on the command line: codes, a known name, or ``DIR:topK``; and the
network a run stacked its blocks into, for commands that rebuild it (``train``, ``draw``,
``export``, the report's hints)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from blockqnn import blocks, nsc
from blockqnn.config import SearchConfig
from blockqnn.search import open_run
from blockqnn.store import Candidate

_TOP = re.compile(r"^(?P<run>.+):top(?P<rank>\d+)$")


@dataclass(frozen=True)
class RunNetwork:
    """How a search run built its networks (from its stored training evaluator).

    ``None`` means the preset's default (``repeats``, ``widths``) or the data's own size
    (``image_size``). Classes and input channels are the dataset's.
    """

    run_dir: str
    dataset: str  #: the dataset spec the run trained on
    preset: str  #: "cifar" or "imagenet"
    repeats: int | None  #: N the ranked candidate was trained with (BlockQNN-L may lower it)
    widths: tuple[int, ...] | None
    image_size: int | None
    conv: str  #: "pcc" or "plain" (the run's ``--components separate``)


def resolve_block(text: str, max_index: int = nsc.DEFAULT_MAX_INDEX) -> nsc.Block:
    """The block ``text`` names: NSC code text, a known block's name (``blocks.KNOWN``), or
    ``DIR:topK``, the K-th best complete candidate (by reward) of the run in ``DIR``.

    Raises NSCError for invalid codes, KeyError for an unknown name, ValueError when the
    run has fewer than K ranked candidates or is not an NSC search, and StoreError when
    ``DIR`` holds no readable run.
    """
    found = _TOP.match(text.strip())
    if found is None:
        return blocks.resolve(text, max_index)
    candidate, config = _ranked(found["run"], int(found["rank"]))
    return nsc.parse(candidate.arch, config.max_index)


def run_network(text: str) -> RunNetwork | None:
    """The network of the run ``text`` names as ``DIR:topK``; None for codes or a name.

    Raises as :func:`resolve_block` does, and ValueError for a run that did not train
    (a tabular search).
    """
    found = _TOP.match(text.strip())
    if found is None:
        return None
    candidate, config = _ranked(found["run"], int(found["rank"]))
    options = config.evaluator
    if options.get("kind") != "train":
        raise ValueError(f"{found['run']} did not train its candidates; it has no network")
    widths = options.get("widths")
    return RunNetwork(
        run_dir=found["run"],
        dataset=options["dataset"],
        preset=options.get("preset", "cifar"),
        repeats=candidate.extra.get("repeats", options.get("repeats")),
        widths=None if widths is None else tuple(widths),
        image_size=options.get("image_size"),
        conv=options.get("conv", "pcc"),
    )


def _ranked(run_dir: str, rank: int) -> tuple[Candidate, SearchConfig]:
    """The ``rank``-th best candidate of an NSC run, and the run's configuration."""
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
