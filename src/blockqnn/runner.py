"""Making, searching and resuming a run in a run directory: the steps ``blockqnn search``
and the Python API (:mod:`blockqnn.api`) share.

Order of work, so that a mistake never leaves a half-made run behind: the options are
checked, then the run directory is created and locked, the run's own data (if any) is
written into it, everything the master can check is checked (the strategy's options, the
dataset or table, one network, the executor's connection), and only then is the run's
database created; a failure before that removes what was made. A resume takes the lock
first, then reads the stored configuration, which is the truth: a given option that
contradicts it is refused.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from blockqnn.config import ConfigError, SearchConfig, make_space
from blockqnn.errors import UserError
from blockqnn.execution.base import Executor, ExecutorLost
from blockqnn.execution.factory import ExecutorSpec, make_executor
from blockqnn.options import OptionError, RunOptions
from blockqnn.preflight import SetupError, check_evaluator
from blockqnn.resume import check_resume
from blockqnn.rundir import check_new_run_dir, check_run, locked, new_run_dir
from blockqnn.search import Progress, Search, check_budget, create_run, new_strategy, open_run
from blockqnn.store import RunStore

logger = logging.getLogger(__name__)

#: Writes a run's own data into its directory before the checks (see :mod:`blockqnn.userdata`).
DataWriter = Callable[[Path], None]


@dataclass(frozen=True)
class Hooks:
    """What a search session reports to its caller (see :class:`~blockqnn.search.Search`)."""

    progress: Callable[[Progress], None] | None = None
    on_result: Callable[[Search, int], None] | None = None


def create(
    run_dir: Path, options: RunOptions, data: tuple[str, DataWriter] | None = None
) -> SearchConfig:
    """Make a new run in ``run_dir`` without searching; its configuration.

    ``data``: the file name and writer of the run's own data (its dataset spec already in
    ``options``). Raises the library's user errors (nothing is left behind)."""
    with _made(run_dir, options, data, local=True) as config:
        create_run(run_dir, config).close()
    return config


def start(
    run_dir: Path, options: RunOptions, execution: ExecutorSpec, hooks: Hooks = Hooks()
) -> float:
    """Make a new run in ``run_dir`` and search it to its budget (see :func:`create`); the
    search's wall seconds. Ctrl-C and a lost cluster (:class:`ExecutorLost`) propagate with
    everything saved."""
    with (
        _made(run_dir, options, None, local=execution.kind == "local") as config,
        _executor(config, execution) as executor,
        create_run(run_dir, config) as store,
    ):
        return _search(store, config, executor, hooks)


def resume(
    run_dir: Path, options: RunOptions, execution: ExecutorSpec, hooks: Hooks = Hooks()
) -> float:
    """Continue the run in ``run_dir`` with its stored configuration; the search's wall
    seconds. OptionError when a given option contradicts it; raises as :func:`start`."""
    check_run(run_dir)
    with locked(run_dir):
        store, config = open_run(run_dir)
        with store:
            check_resume(run_dir, options, config)
            if options.threads is not None:  # how evaluations run: may change
                config = config.with_execution(threads=options.threads)
            _check(config, local=execution.kind == "local")
            with _executor(config, execution) as executor:
                return _search(store, config, executor, hooks)


@contextlib.contextmanager
def _made(
    run_dir: Path, options: RunOptions, data: tuple[str, DataWriter] | None, local: bool
) -> Iterator[SearchConfig]:
    """The checked configuration, inside the new, locked run directory (with its data)."""
    check_new_run_dir(run_dir)
    config = options.config()
    leftovers = () if data is None else (data[0],)
    with new_run_dir(run_dir, leftovers):
        if data is not None:
            data[1](run_dir / data[0])
        _check(config, local)
        yield config


def _check(config: SearchConfig, local: bool) -> None:
    """The strategy's options and the evaluator (dataset or table, one network; ``local``:
    evaluations run on this machine, whose devices are then checked)."""
    try:
        space = make_space(config)
        check_budget(config, space)
        new_strategy(config, space)
    except ConfigError as exc:
        raise OptionError(str(exc)) from None
    logger.info("checked: %s", check_evaluator(config, local=local))


@contextlib.contextmanager
def _executor(config: SearchConfig, execution: ExecutorSpec) -> Iterator[Executor]:
    """The executor ``execution`` asks for; SetupError when a Dask scheduler cannot be
    reached or refuses this client, or a cluster cannot be started from its spec. Closed
    on the way out."""
    try:
        executor = make_executor(execution, config)
    except (ExecutorLost, UserError) as exc:  # UserError: e.g. a bad --cluster spec
        raise SetupError(str(exc).splitlines()[0]) from None
    with executor:
        yield executor


def _search(store: RunStore, config: SearchConfig, executor: Executor, hooks: Hooks) -> float:
    started = time.monotonic()
    Search(store, config, executor, progress=hooks.progress, on_result=hooks.on_result).run()
    return time.monotonic() - started
