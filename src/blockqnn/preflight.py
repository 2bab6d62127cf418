"""What the master checks before a run exists, so a setup error never spends a budget.

Without these checks a missing dataset, a table without the reward column or a network
that cannot be stacked for the images would create the run, fail every candidate inside
the workers and end "successfully". :func:`check_evaluator` finds those problems in the
master, in seconds, and raises :class:`SetupError` with one line naming the problem.
"""

from __future__ import annotations

import logging
import random
import sys
from typing import Any

from blockqnn.config import SearchConfig, make_evaluator, make_space
from blockqnn.errors import UserError

logger = logging.getLogger(__name__)


class SetupError(UserError):
    """The run cannot work as configured (a user error): one line, nothing created."""


def check_evaluator(config: SearchConfig, *, local: bool) -> str:
    """Check the configuration's evaluator can work; returns a one-line description.

    ``local``: evaluations run on this machine (so its devices are the ones used).
    Tabular: the table opens and has the columns. Training: the dataset loads (which also
    fills the decoded cache the workers read), the network of a sample block can be built
    and profiled for the data's shape, and a CUDA device exists when one is asked for on
    this machine. Another kind (an import path): its factory builds the evaluator. Raises
    :class:`SetupError` (or the import path's error).
    """
    options = {k: v for k, v in config.evaluator.items() if k != "kind"}
    kind = config.evaluator["kind"]
    if kind == "tabular":
        return _check_table(options)
    if kind == "train":
        return _check_training(config, options, local)
    evaluator = make_evaluator(config)
    return f"evaluator {kind}: {type(evaluator).__name__}"


def _check_table(options: dict[str, Any]) -> str:
    from blockqnn.tabular import TableError, load_table

    columns = ("reward_column", "test_column", "cost_column")
    try:
        table = load_table(options["table"], *(options.get(c) for c in columns))
        for rung_column in options.get("rung_columns") or ():
            load_table(options["table"], rung_column)
    except (TableError, OSError) as exc:
        raise SetupError(str(exc)) from None
    return f"table {options['table']}: {len(table)} architectures"


def _check_training(config: SearchConfig, options: dict[str, Any], local: bool) -> str:
    import torch

    from blockqnn import nsc
    from blockqnn.data import DatasetError
    from blockqnn.model import build
    from blockqnn.profile import profile_network
    from blockqnn.strategies import random_architecture
    from blockqnn.train.evaluator import TrainingEvaluator

    try:
        evaluator = TrainingEvaluator.from_dict(options)
    except ValueError as exc:
        raise SetupError(f"the run's training options: {exc}") from None
    if local and evaluator.device == "cuda" and not torch.cuda.is_available():
        raise SetupError("--device cuda: no CUDA device is available on this machine")
    try:
        data = evaluator.load_data()
    except (DatasetError, OSError) as exc:
        raise SetupError(f"dataset {evaluator.dataset}: {exc}") from None
    shape = {"num_classes": data.num_classes, "in_channels": data.channels}
    space = make_space(config)
    block = nsc.as_block(space.format(random_architecture(space, random.Random(0))), sys.maxsize)
    try:
        network = evaluator.network_config(**shape, image_size=data.image_size)
        profile_network(build(block, network), block, network)
    except (ValueError, RuntimeError) as exc:
        raise SetupError(
            f"the network cannot be stacked for {data.image_size}x{data.image_size} images: "
            f"{_first_line(exc)}"
        ) from None
    return f"{data.describe()}; network N={network.repeats}, widths {list(network.widths)}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
