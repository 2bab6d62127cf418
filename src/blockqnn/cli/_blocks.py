"""Naming a block on the command line: codes, a known name, ``DIR:topK`` or ``DIR:ID``; and the
network a run stacked its blocks into, for commands that rebuild it (``train``, ``draw``,
``export``, the report's hints)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Collection
from dataclasses import dataclass

from blockqnn import blocks, nsc
from blockqnn.cli._errors import UsageError
from blockqnn.config import COMPONENTS, SearchConfig
from blockqnn.search import open_run
from blockqnn.store import Candidate

_TOP = re.compile(r"^(?P<run>.+):top(?P<rank>\d+)$")
_ID = re.compile(r"^(?P<run>.+):(?P<id>\d+)$")


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
    known block's name (``blocks.KNOWN``), ``DIR:topK``, the K-th of the run's ranking
    (:func:`blockqnn.store.rank`), or ``DIR:ID``, the run's candidate with id ``ID`` (any
    state; the report's detail view prints this form). A run's own maximum index and code
    space apply to its blocks; a NAS-Bench-201 run gives its cell's arch string.

    Raises NSCError for invalid codes, KeyError for an unknown name, UsageError when the
    run has fewer than K ranked candidates, and StoreError when ``DIR`` holds no readable
    run or no candidate ``ID``.
    """
    named = run_candidate(text)
    if named is None:
        return blocks.resolve(text, max_index, types)
    _, candidate, config = named
    if config.space != "nsc":
        return candidate.arch
    return nsc.parse(candidate.arch, config.max_index, COMPONENTS[config.components])


def run_network(text: str) -> RunNetwork | None:
    """The network of the run ``text`` names as ``DIR:topK`` or ``DIR:ID``; None for codes
    or a name.

    Raises as :func:`resolve_arch` does, and UsageError for a run that did not train its
    candidates (a tabular search).
    """
    named = run_candidate(text)
    if named is None:
        return None
    run_dir, candidate, config = named
    options = config.evaluator
    if options.get("kind") != "train":
        raise UsageError(f"{run_dir} did not train its candidates; it has no network")
    widths = options.get("widths")
    return RunNetwork(
        run_dir=run_dir,
        dataset=options["dataset"],
        preset=options.get("preset", "cifar"),
        repeats=candidate.extra.get("repeats", options.get("repeats")),
        widths=None if widths is None else tuple(widths),
        image_size=options.get("image_size"),
        conv=options.get("conv", "pcc"),
    )


def run_candidate(text: str) -> tuple[str, Candidate, SearchConfig] | None:
    """``(DIR, candidate, configuration)`` for ``DIR:topK`` or ``DIR:ID``, else None
    (errors as :func:`resolve_arch` describes)."""
    top = parse_top(text)
    if top is not None:
        return (top[0], *ranked_candidate(*top))
    found = _ID.match(text.strip())
    if found is None:
        return None
    store, config = open_run(found["run"])
    with store:
        return found["run"], store.get(int(found["id"])), config


def parse_top(text: str) -> tuple[str, int] | None:
    """``(DIR, K)`` for text of the form ``DIR:topK``, else None."""
    found = _TOP.match(text.strip())
    return None if found is None else (found["run"], int(found["rank"]))


def ranked_candidate(run_dir: str, rank: int) -> tuple[Candidate, SearchConfig]:
    """The ``rank``-th candidate of the run's ranking and the run's configuration
    (UsageError and StoreError as :func:`resolve_arch` describes)."""
    if rank < 1:
        raise UsageError(f"{run_dir}:top{rank}: ranks start at 1")
    store, config = open_run(run_dir)
    with store:
        best = store.top(rank)
    if len(best) < rank:
        raise UsageError(f"{run_dir} has {len(best)} ranked candidate(s); cannot take top{rank}")
    return best[rank - 1], config


def resolve_block(
    text: str, max_index: int = nsc.DEFAULT_MAX_INDEX, types: Collection[int] = nsc.PCC_TYPES
) -> nsc.Block:
    """The NSC block ``text`` names (see :func:`resolve_arch`), for commands that build a
    network. A NAS-Bench-201 run's cell is refused with UsageError: it was looked up in a
    table and has no network to build here."""
    arch = resolve_arch(text, max_index, types)
    if isinstance(arch, str):
        raise UsageError(
            f"{text} is a NAS-Bench-201 cell ({arch}) from a table look-up search; blockqnn "
            "builds and trains NSC blocks only (draw and export accept NAS-Bench-201 runs)"
        )
    return arch
