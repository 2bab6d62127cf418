"""blockqnn from Python: make or open a run, search it, read its results.

::

    import blockqnn
    run = blockqnn.create_run("runs/x", dataset="digits", evaluations=80, epochs=1)
    run.search(workers=2)      # resumable: calling it again (or open_run later) continues
    run.best(5)                # candidates ranked as ``blockqnn show`` ranks them
    run.to_dataframe()         # every candidate and metric (needs pandas)
    net = run.model("top1")    # the best block's network, untrained

The options are those of ``blockqnn search`` under their Python names (``--val-fraction``
is ``val_fraction``), with its defaults, checks and resume rules (:mod:`blockqnn.options`,
:mod:`blockqnn.runner`); errors are the library's :class:`~blockqnn.errors.UserError`
classes with the command line's messages. A run made here is a run directory like any
other: ``blockqnn show``, ``report``, ``export`` and ``search --resume`` work on it, and
``open_run`` opens one the command line made.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from blockqnn.config import SearchConfig
from blockqnn.execution.factory import ExecutorSpec, executor_address
from blockqnn.importpath import import_path
from blockqnn.options import OptionError, RunOptions
from blockqnn.rundir import check_run
from blockqnn.runner import Hooks, Session, create, resume
from blockqnn.search import Progress, Search
from blockqnn.search import open_run as open_store
from blockqnn.store import Candidate, rank

#: File name of a run's own data (arrays or a torch dataset) in its directory.
DATA_NAME = "data.npz"

#: A callback: called on the master after each finished candidate with the run and the
#: candidate; ``run.stop()`` ends the search cleanly (see :meth:`Run.search`).
Callback = Callable[["Run", Candidate], None]


def create_run(run_dir: str | Path, dataset: Any = None, **options: Any) -> Run:
    """Make a new run in ``run_dir`` (refused if one is there) and return it, unsearched.

    ``dataset``: a spec (``"digits"``, ``"cifar10:PATH"``, ...; default digits), a pair
    ``(x, y)`` of numpy arrays (``x`` images ``[N,H,W]`` or ``[N,H,W,C]``, uint8 or floats
    in [0, 1]; ``y`` integer labels), or a map-style ``torch.utils.data.Dataset`` of
    ``(image [C,H,W] tensor, label)``; arrays and datasets are written once into the run
    directory (``data.npz``) and the workers load that file. ``trainer``: a training
    function (or its ``"module:qualname"``) replacing the recipe's training, see
    :mod:`blockqnn.train.custom`. Other ``options``: those of ``blockqnn search``
    (``evaluations``, ``epochs``, ``widths``, ``strategy``, ``seed``, ``option`` for strategy
    options, ...). The options, the dataset and one network are checked before the run is
    made; a user error leaves nothing behind.
    """
    run_dir = Path(run_dir)
    trainer = options.get("trainer")
    if trainer is not None and not isinstance(trainer, str):
        options["trainer"] = import_path(trainer)
    data = None
    if dataset is not None and not isinstance(dataset, str):
        data = (DATA_NAME, _data_writer(dataset))
        dataset = f"npz:{run_dir.resolve() / DATA_NAME}"
    if dataset is not None:
        options["dataset"] = dataset
    create(run_dir, RunOptions.from_mapping(options), data)
    return Run(run_dir)


def open_run(run_dir: str | Path) -> Run:
    """The run in ``run_dir`` (RunDirError when there is none)."""
    run_dir = Path(run_dir)
    check_run(run_dir)
    return Run(run_dir)


class Run:
    """A run directory. Reads open the run database afresh, so they follow a search that
    another process runs; :meth:`search` takes the run's lock."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir)
        self._search: Search | None = None
        self._session: Session | None = None

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @property
    def config(self) -> SearchConfig:
        """The run's stored configuration."""
        store, config = open_store(self.path)
        store.close()
        return config

    def search(
        self,
        workers: int | None = None,
        executor: str = "local",
        *,
        gpus: Sequence[int] | None = None,
        prefetch: int | str = "auto",
        eval_timeout: float | None = None,
        callbacks: Iterable[Callback] = (),
        progress: Callable[[Progress], None] | None = None,
    ) -> Run:
        """Search the run until its budget is spent (or a callback stops it); returns the run.

        Calling it again continues where the run stopped (as ``blockqnn search --resume``;
        nothing finished is repeated). ``workers``, ``executor`` (``"local"`` or a Dask
        scheduler ``"tcp://HOST:PORT"``), ``gpus``, ``prefetch`` and ``eval_timeout`` are the
        command line's execution options. Each callback is called on this process after
        every finished candidate as ``callback(run, candidate)``; one that calls
        :meth:`stop` ends the search cleanly: nothing more is proposed, evaluations in flight
        finish and are saved, and the run's status is ``stopped``. Ctrl-C leaves the run
        saved as well.
        """
        try:
            address = executor_address(executor)
        except ValueError as exc:
            raise OptionError(f"--executor: {exc}") from None
        spec = ExecutorSpec(address, workers, gpus, prefetch, eval_timeout)
        hooks = Hooks(progress=progress, on_result=self._notifier(list(callbacks)))
        self._session = resume(self.path, RunOptions(), spec, hooks)
        return self

    def stop(self) -> None:
        """From a callback: end the running search cleanly (see :meth:`search`)."""
        if self._search is not None:
            self._search.stop()

    def _notifier(self, callbacks: list[Callback]) -> Callable[[Search, int], None] | None:
        if not callbacks:
            return None

        def notify(search: Search, cid: int) -> None:
            self._search = search
            candidate = search.store.get(cid)
            for callback in callbacks:
                callback(self, candidate)

        return notify

    @property
    def status(self) -> str | None:
        """``created``, ``running``, ``interrupted``, ``stopped`` or ``finished``."""
        store, _ = open_store(self.path)
        with store:
            return store.get_meta("status")

    def candidates(self) -> list[Candidate]:
        """Every candidate in proposal order (any state)."""
        store, _ = open_store(self.path)
        with store:
            return store.candidates()

    def best(self, k: int = 5) -> list[Candidate]:
        """The ``k`` best candidates, ranked as ``blockqnn show`` ranks them
        (:func:`blockqnn.store.rank`: by reward, one per architecture; a multi-objective run
        by its Pareto front)."""
        return rank(self.candidates(), objectives=self.config.objectives)[:k]

    def to_dataframe(self):
        """Every candidate as a row of a ``pandas.DataFrame``: id, state, arch, iteration,
        epsilon, reward, each metric by name, cost_s, attempts, reused_from, error. Needs
        pandas (``pip install 'blockqnn[pandas]'``)."""
        try:
            import pandas
        except ImportError:
            raise OptionError(
                "Run.to_dataframe needs pandas: pip install 'blockqnn[pandas]'"
            ) from None
        rows = [_row(c) for c in self.candidates()]
        return pandas.DataFrame(rows).set_index("id") if rows else pandas.DataFrame()

    def model(self, which: str | int = "top1"):
        """The network of a candidate as an untrained, He-initialised ``nn.Module`` (with
        ``.codes``), as the run built it: ``"topK"`` (the K-th of :meth:`best`'s ranking) or
        a candidate id. OptionError for a NAS-Bench-201 run or a rank the run lacks."""
        from blockqnn.train.evaluator import searched_network

        config = self.config
        if config.space != "nsc":
            raise OptionError(f"{self.path} searched the {config.space!r} space: no network")
        return searched_network(config, self._candidate(which))[0]

    def _candidate(self, which: str | int) -> Candidate:
        if isinstance(which, int):
            store, _ = open_store(self.path)
            with store:
                return store.get(which)
        if not (which.startswith("top") and which[3:].isdigit() and int(which[3:]) >= 1):
            raise OptionError(f"{which!r}: expected 'topK' (K >= 1) or a candidate id")
        best = self.best(int(which[3:]))
        if len(best) < int(which[3:]):
            raise OptionError(f"{self.path} has {len(best)} ranked candidate(s); no {which}")
        return best[-1]

    def summary(self) -> str:
        """The summary ``blockqnn search`` prints (with the last search session's time)."""
        from blockqnn.summary import summary

        return summary(self.path, self._session.wall_s if self._session else 0.0)


def _row(c: Candidate) -> dict[str, Any]:
    return {
        "id": c.id,
        "state": c.state.value,
        "arch": c.arch,
        "iteration": c.iteration,
        "epsilon": c.epsilon,
        "reward": c.reward,
        **c.named(),
        "cost_s": c.cost_s,
        "attempts": c.attempts,
        "reused_from": c.reused_from,
        "error": c.error,
    }


def _data_writer(dataset: Any) -> Callable[[Path], None]:
    """Checks ``dataset`` (arrays or a torch dataset) now; writes it when called."""
    from blockqnn.data.arrays import as_images, as_labels, from_torch, write_npz

    if isinstance(dataset, tuple) and len(dataset) == 2:
        x = as_images(dataset[0], "dataset")
        y = as_labels(dataset[1], len(x), "dataset")
    elif hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__"):
        x, y = from_torch(dataset, "dataset")
    else:
        raise OptionError(
            "dataset: expected a spec, a pair (x, y) of arrays or a torch Dataset, got "
            f"{type(dataset).__name__}"
        )
    return lambda path: write_npz(path, x, y)
