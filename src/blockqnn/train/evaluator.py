"""Early-stop evaluation of a block: build the network, profile it, train it briefly.

:class:`TrainingEvaluator` is the evaluator of the NSC space (the contract is in
:mod:`blockqnn.evaluation`): a small picklable configuration of plain options. Each worker
process loads the dataset once (cached at module level, keyed by the loader options) and
evaluates many candidates with it.

Restart rule (paper section 4.2): when the validation accuracy after the first epoch is at
or below chance (100 / classes percent), the learning rate is multiplied by
``restart_factor`` and training restarts from a fresh initialisation, at most
``max_restarts`` times. A loss that turns NaN/inf in the first epoch counts as such a
failure; one later, or after the last restart, fails the candidate (``"diverged: ..."``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from blockqnn import nsc
from blockqnn.data import Dataset, load_dataset
from blockqnn.evaluation import EvaluationError, Result, Step, check_limits
from blockqnn.latency import Latency, measure_latency
from blockqnn.model import NetworkConfig, build, cifar, imagenet
from blockqnn.profile import count_params, profile_network
from blockqnn.train import custom
from blockqnn.train.checkpoint import ModelFileError, load_tagged, tagged, to_bytes
from blockqnn.train.loop import Diverged, Loop, configure_cpu, resolve_device
from blockqnn.train.recipes import EarlyStopRecipe, early_stop_recipe

logger = logging.getLogger(__name__)

_PRESETS = {"cifar": cifar, "imagenet": imagenet}
_DATASETS: dict[tuple, Dataset] = {}
#: Most torch threads per worker (far more than any CPU has: thousands crash torch).
MAX_THREADS = 256
#: Format tag of the files that carry a candidate's training from one rung to the next.
RUNG_STATE_FORMAT = "blockqnn-rung-state"


@dataclass(frozen=True)
class TrainingEvaluator:
    """Trains each candidate with an early-stop recipe; its validation accuracy is the signal.

    Plain, picklable options; :meth:`to_dict`/:meth:`from_dict` give the JSON form a run's
    configuration stores.
    """

    dataset: str = "digits"  #: dataset spec for :func:`blockqnn.data.load_dataset`
    subset: int | None = None  #: keep this many training images (val/test shrink alike)
    image_size: int | None = None  #: resize images to this size
    val_fraction: float = 0.1  #: share of the training data held out for validation
    cache_dir: str | None = None  #: dataset cache (default: $BLOCKQNN_CACHE or ~/.cache)
    download: bool = False  #: download a missing CIFAR archive into the cache
    preset: str = "cifar"  #: network stacking: "cifar" or "imagenet"
    widths: tuple[int, ...] | None = None  #: stage widths (preset default when None)
    repeats: int | None = None  #: N, blocks per stage (preset default when None)
    conv: str = "pcc"  #: convolution codes as "pcc" (paper) or "plain" (Fig. 9 ablation)
    recipe: str = "paper"  #: early-stop preset: "paper" or "proxy"
    recipe_overrides: dict[str, Any] = field(default_factory=dict)  #: EarlyStopRecipe fields
    max_params: int | None = None  #: parameter limit; None for none
    adapt_repeats: bool = False  #: over the limit, lower N until it fits (BlockQNN-L)
    seed: int = 0  #: with the codes, seeds initialisation and shuffling
    threads: int = 1  #: torch CPU threads in the worker process
    amp: bool = False  #: mixed precision on CUDA
    device: str = "auto"  #: "auto", "cpu" or "cuda"
    latency_batch: int | None = 64  #: throughput batch of the latency measurement; None: skip
    #: metric name -> largest allowed value, checked before training (flops, params,
    #: density, latency_ms, latency_batch_ms); a candidate over one fails at once
    limits: dict[str, float] = field(default_factory=dict)
    #: import path ``module:qualname`` of a training function that replaces the recipe's
    #: training (:mod:`blockqnn.train.custom`); None: the built-in early stop
    trainer: str | None = None

    def __post_init__(self) -> None:
        """Normalise ``widths`` to a tuple and fail fast (ValueError) on bad options, before
        any worker runs: the recipe and the network options are built once here."""
        if self.widths is not None:
            object.__setattr__(self, "widths", tuple(self.widths))
        self.early_stop_recipe()
        self.network_config(num_classes=10, in_channels=3, image_size=32)  # any data shape
        if self.max_params is not None and self.max_params < 1:
            raise ValueError(f"max_params must be positive, got {self.max_params}")
        if not 1 <= self.threads <= MAX_THREADS:
            raise ValueError(f"threads={self.threads}: give 1 to {MAX_THREADS} threads per worker")
        if self.latency_batch is not None and self.latency_batch < 1:
            raise ValueError(f"latency_batch must be positive, got {self.latency_batch}")
        if self.trainer is not None:
            custom.trainer(self.trainer)

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible dict of the options."""
        data = dataclasses.asdict(self)
        data["widths"] = None if self.widths is None else list(self.widths)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingEvaluator:
        """Inverse of :meth:`to_dict`; an unknown option raises ValueError naming it."""
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown TrainingEvaluator option(s): {', '.join(unknown)}")
        return cls(**data)

    def early_stop_recipe(self) -> EarlyStopRecipe:
        """The named preset with the overrides applied."""
        return early_stop_recipe(self.recipe, self.recipe_overrides)

    def network_config(self, **data_shape: int) -> NetworkConfig:
        """The preset with the widths/repeats options and ``num_classes``, ``in_channels``
        and ``image_size`` (from the dataset) applied."""
        if self.preset not in _PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; choose one of {sorted(_PRESETS)}")
        options = {"widths": self.widths, "repeats": self.repeats}
        return _PRESETS[self.preset](
            **{k: v for k, v in options.items() if v is not None}, conv=self.conv, **data_shape
        )

    def load_data(self) -> Dataset:
        """The dataset, loaded once per process and options."""
        options = {
            "val_fraction": self.val_fraction,
            "subset": self.subset,
            "image_size": self.image_size,
            "cache_dir": self.cache_dir,
        }
        key = (self.dataset, *options.values())
        if key not in _DATASETS:
            _DATASETS[key] = load_dataset(self.dataset, download=self.download, **options)
        return _DATASETS[key]

    def evaluate(self, arch: str) -> Result:
        """Train the network of block ``arch`` (NSC text) and return its validation accuracy,
        with the metrics ``flops``, ``params``, ``density`` and (unless ``latency_batch`` is
        None) the network's ``latency_ms`` and ``latency_batch_ms``, measured on this
        worker's device just before training (weights do not change the cost).

        Raises NSCError for invalid codes, ConstraintViolation before training when a
        metric is over ``limits``, and EvaluationError when the network is over the
        parameter limit or training diverges.
        """
        start = time.perf_counter()
        block, config, data, metrics, extra = self._prepare(arch)
        epochs = self.early_stop_recipe().epochs
        if self.trainer is not None:
            return self._custom(block, config, data, metrics, extra, start, epochs=epochs)
        loop, restarts = self._train(block, config, data, epochs)
        return _result(loop, restarts, metrics, extra, time.perf_counter() - start, 0)

    def evaluate_rung(self, arch: str, step: Step) -> Result:
        """Train block ``arch`` up to ``step.budget`` epochs, continuing from ``step.state``
        (the bytes a rung of it returned after ``step.start`` epochs; training from nothing
        when there is none to use); unless ``step.last``, the result's ``state`` holds the
        whole training state for the next rung (a torch file of tensors and plain data,
        read back with ``weights_only=True``).

        The epochs' learning rates are those of the uninterrupted early stop, so the top
        rung measures what :meth:`evaluate` measures. The result's curve holds the epochs
        trained in this step; ``cost_s`` is this step's time. Raises as :meth:`evaluate`.
        """
        start = time.perf_counter()
        block, config, data, metrics, extra = self._prepare(arch)
        epochs = int(step.budget)
        if self.trainer is not None:
            return self._custom(
                block, config, data, metrics, extra, start, epochs=epochs,
                start_epoch=int(step.start), state=step.state, last=step.last,
            )  # fmt: skip
        resumed = self._resume(block, config, data, step)
        if resumed is None:
            (loop, restarts), first = self._train(block, config, data, epochs), 0
        else:
            loop, restarts = resumed
            first, loop.epochs = loop.epoch, epochs
            loop.run()
        result = _result(loop, restarts, metrics, extra, time.perf_counter() - start, first)
        if step.last:
            return result
        return dataclasses.replace(result, state=_rung_state(arch, loop, restarts))

    def _prepare(
        self, arch: str
    ) -> tuple[nsc.Block, NetworkConfig, Dataset, dict[str, float], dict[str, Any]]:
        """The block, its network configuration (within the parameter limit), the data, the
        metrics measured before training (``flops``, ``params``, ``density``, latency) and
        the details for ``extra``; ConstraintViolation when a metric is over ``limits``."""
        configure_cpu(self.threads)
        block = nsc.as_block(arch, sys.maxsize)
        data = self.load_data()
        config = self._fit_limit(block, self.network_config(**data_shape(data)))
        network = build(block, config)
        prof = profile_network(network, block, config)
        metrics = {"flops": prof.gflops, "params": prof.params, "density": prof.density}
        extra: dict[str, Any] = {"repeats": config.repeats}
        if self.latency_batch is not None:
            latency = self._latency(network, config)
            metrics.update(latency.metrics())
            extra.update(latency.details())
        check_limits(metrics, self.limits, "checked before training")
        return block, config, data, metrics, extra

    def _custom(
        self,
        block: nsc.Block,
        config: NetworkConfig,
        data: Dataset,
        metrics: dict[str, float],
        extra: dict[str, Any],
        start: float,
        **budget: Any,
    ) -> Result:
        """The result of the user's training function on the freshly seeded network. A rung
        continues from ``budget["state"]`` (bytes): the function sees it as a file of this
        worker, and what it saves there below the top rung returns as the result's state."""
        seed = _seed(self.seed, block, 0)
        torch.manual_seed(seed)
        network = build(block, config)
        device = resolve_device(self.device)
        rung, state = "last" in budget, budget.pop("state", None)
        with tempfile.TemporaryDirectory(prefix="blockqnn-rung-") as folder:
            path = Path(folder) / "state.pt"
            if state is not None:
                path.write_bytes(state)
            file = str(path) if rung else None
            spend = custom.Budget(
                data=data, device=device, seed=seed, amp=self.amp, state=file, **budget
            )
            returned = custom.trainer(self.trainer)(network, spend)
            saved = path.read_bytes() if not spend.last and path.exists() else None
        accuracy, more = custom.accuracy_and_metrics(returned, self.trainer)
        details = {**extra, "trainer": self.trainer, "epochs": spend.epochs}
        seconds = time.perf_counter() - start
        return Result(
            accuracy, metrics={**metrics, **more}, cost_s=seconds, extra=details, state=saved
        )

    def _resume(
        self, block: nsc.Block, config: NetworkConfig, data: Dataset, step: Step
    ) -> tuple[Loop, int] | None:
        """The loop ``step.state`` holds after ``step.start`` epochs of this block, and its
        restarts; None (logged) when there is no such state."""
        if not step.start or step.state is None:
            return None
        try:
            saved = load_tagged(step.state, RUNG_STATE_FORMAT)
        except ModelFileError as exc:
            logger.warning("cannot continue from the rung state (%s); training again", exc)
            return None
        if saved["codes"] != nsc.format_block(block) or saved["loop"]["epoch"] != step.start:
            logger.warning("the rung state holds another block or epoch; training again")
            return None
        recipe = self.early_stop_recipe()
        loop = Loop(
            build(block, config), data, recipe, int(step.budget), device=self.device, amp=self.amp
        )
        loop.load_state_dict(saved["loop"])
        return loop, int(saved["restarts"])

    def _latency(self, network: torch.nn.Module, config: NetworkConfig) -> Latency:
        """The network's latency on the device it will train on (as training lays it out)."""
        network.to(resolve_device(self.device), memory_format=torch.channels_last)
        return measure_latency(
            network, config.in_channels, config.image_size, batch=self.latency_batch
        )

    def _fit_limit(self, block: nsc.Block, config: NetworkConfig) -> NetworkConfig:
        """``config``, or with a smaller N when adapting to the parameter limit."""
        if self.max_params is None:
            return config
        lowest = 1 if self.adapt_repeats else config.repeats
        for repeats in range(config.repeats, lowest - 1, -1):
            params = count_params(build(block, dataclasses.replace(config, repeats=repeats)))
            if params <= self.max_params:
                return dataclasses.replace(config, repeats=repeats)
        raise EvaluationError(f"over the parameter limit: {params} > {self.max_params}")

    def _train(
        self, block: nsc.Block, config: NetworkConfig, data: Dataset, epochs: int
    ) -> tuple[Loop, int]:
        """The loop trained for ``epochs`` epochs and the number of restarts it took (the
        restart rule)."""
        recipe = self.early_stop_recipe()
        chance = 100 / data.num_classes
        lr = recipe.lr
        for restart in range(recipe.max_restarts + 1):
            seed = _seed(self.seed, block, restart)
            torch.manual_seed(seed)
            loop = Loop(
                build(block, config),
                data,
                recipe,
                epochs,
                lr=lr,
                seed=seed,
                device=self.device,
                amp=self.amp,
            )
            if _first_epoch_ok(loop, chance, last=restart == recipe.max_restarts):
                break
            lr *= recipe.restart_factor
            logger.info("epoch 1 at or below chance: restart %d with lr %.3g", restart + 1, lr)
        loop.run()
        return loop, restart


def _result(
    loop: Loop,
    restarts: int,
    metrics: dict[str, float],
    extra: dict[str, Any],
    seconds: float,
    first: int,
) -> Result:
    """The result of a trained loop; its curve holds the epochs after ``first``."""
    last = loop.history[-1]
    details = {
        **extra,
        "epochs": loop.epoch,
        "restarts": restarts,
        "lr": loop.base_lr,
        "train_accuracy": last.train_accuracy,
        "images_per_s": _throughput(loop),
        "continued_from": first,
    }
    curve = [
        {"epoch": s.epoch, "val_accuracy": s.val_accuracy, "val_loss": _finite(s.val_loss)}
        for s in loop.history
        if s.epoch > first
    ]
    return Result(
        accuracy=last.val_accuracy, metrics=metrics, cost_s=seconds, extra=details, curve=curve
    )


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _rung_state(arch: str, loop: Loop, restarts: int) -> bytes:
    """The loop's whole state, for the next rung, as a tagged torch file's bytes."""
    block = nsc.format_block(nsc.as_block(arch, sys.maxsize))
    record = {"codes": block, "loop": loop.state_dict(), "restarts": restarts}
    return to_bytes(tagged(RUNG_STATE_FORMAT, record))


def _first_epoch_ok(loop: Loop, chance: float, last: bool) -> bool:
    """Train epoch 1; True to go on with this loop: its validation accuracy beats
    ``chance`` percent, or it is the ``last`` try (where a divergence is raised)."""
    try:
        stats = loop.run(until=1)[-1]
    except Diverged:
        if last:
            raise
        return False
    return last or stats.val_accuracy > chance


def _seed(seed: int, block: nsc.Block, restart: int) -> int:
    """A 63-bit seed from the evaluator's seed, the codes and the restart number."""
    text = f"{seed}|{nsc.format_block(block)}|{restart}".encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big") >> 1


def searched_network(config: Any, candidate: Any) -> tuple[torch.nn.Module, Dataset]:
    """The He-initialised network of a search run's candidate (a ``SearchConfig`` of a
    training run and a stored ``Candidate``), with the number of blocks per stage it was
    evaluated with, seeded by the run's seed; and the run's dataset, which gives the
    shapes. A training function of the run is not needed (nor imported) here."""
    evaluator = TrainingEvaluator.from_dict(
        {k: v for k, v in config.evaluator.items() if k not in ("kind", "trainer")}
    )
    data = evaluator.load_data()
    network_config = evaluator.network_config(**data_shape(data))
    repeats = candidate.extra.get("repeats", network_config.repeats)
    torch.manual_seed(config.seed)
    network = build(candidate.arch, dataclasses.replace(network_config, repeats=repeats))
    return network, data


def data_shape(data: Dataset) -> dict[str, int]:
    """The network options a dataset fixes: classes, input channels, image size."""
    return {
        "num_classes": data.num_classes,
        "in_channels": data.channels,
        "image_size": data.image_size,
    }


def _throughput(loop: Loop) -> float:
    """Training images per second over the whole (last) run."""
    seconds = sum(s.seconds for s in loop.history)
    return sum(s.images_per_s * s.seconds for s in loop.history) / seconds
