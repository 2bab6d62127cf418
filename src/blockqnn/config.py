"""The resolved configuration of a search run, and the objects it describes.

A run's configuration is stored in its database when the run starts; ``--resume`` reads
it back, so a resumed run always continues with the settings it began with. Evaluators
that need torch are imported only when built.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import asdict, dataclass, field
from typing import Any

from blockqnn import nsc
from blockqnn.errors import UserError
from blockqnn.evaluation import LATENCY_METRICS, PROFILE_METRICS, Evaluator
from blockqnn.fidelity import Rungs
from blockqnn.importpath import resolve
from blockqnn.pareto import MAXIMISED, objectives, steering_terms
from blockqnn.reward import RewardConfig
from blockqnn.space import NSCSpace, Space

#: The paper's budget: 178 iterations of 64 blocks (weeks of training on a CPU).
PAPER_EVALUATIONS = 178 * 64
#: ``blockqnn search``'s budget when none is given: 4 iterations of 64 candidates, minutes
#: on digits and hours for a small CIFAR proxy on a few CPU cores.
DEFAULT_EVALUATIONS = 4 * 64


#: Evaluator options that say how evaluations run, not what they measure (see
#: :meth:`SearchConfig.with_execution`).
EXECUTION_OPTIONS = frozenset({"threads"})


class ConfigError(ValueError, UserError):
    """An invalid run configuration; the message names the field."""


@dataclass(frozen=True)
class SearchConfig:
    """Everything that defines a search run (JSON-compatible)."""

    space: str = "nsc"  #: "nsc" (BlockQNN blocks) or "nb201" (NAS-Bench-201 cells)
    max_index: int = nsc.DEFAULT_MAX_INDEX  #: NSC space: largest layer index (terminal incl.)
    components: str = "pcc"  #: NSC space: "pcc" (paper) or "separate" ReLU/BN/Conv (Fig. 9)
    strategy: str = "qlearning"  #: "qlearning", "random" or "evolution"
    strategy_options: dict[str, Any] = field(default_factory=dict)  #: e.g. {"shaped": False}
    evaluations: int = PAPER_EVALUATIONS  #: budget: candidates proposed in all
    batch: int = 64  #: candidates per iteration (epsilon schedule, replay)
    seed: int = 0  #: seeds the strategy (and evaluators that train)
    mu: float = 0.0  #: reward weight of ln(GFLOPs) (the paper: 1)
    rho: float = 0.0  #: reward weight of ln(density) (the paper: 8)
    #: further reward penalties by metric name: {"latency_ms": {"weight": 2, "reference": 1}}
    reward_terms: dict[str, dict[str, float]] = field(default_factory=dict)
    #: two or more objectives (metric names or aliases, see blockqnn.pareto): the run's
    #: Pareto front is kept, and the agent's reward is steered by random weights per iteration
    objectives: list[str] = field(default_factory=list)
    #: largest weight of a cost objective's ln(value) term when steering (random 0..this)
    steer_weight: float = 10.0
    #: metric name -> largest allowed value; a candidate over one fails with the reason
    constraints: dict[str, float] = field(default_factory=dict)
    dedupe: bool = True  #: reuse the stored result of an isomorphic, completed candidate
    count_duplicates: bool = False  #: reused duplicates count towards the budget (paper)
    max_attempts: int = 3  #: tries per candidate when its worker dies
    evaluator: dict[str, Any] = field(default_factory=dict)  #: {"kind": ..., options}
    #: multi-fidelity rung budgets (epochs, or table costs), the last the full budget;
    #: empty for the plain early stop (see :mod:`blockqnn.fidelity`)
    rungs: list[float] = field(default_factory=list)
    eta: float | None = None  #: rungs: promote 1/eta per rung (None: budget ratios)

    def __post_init__(self) -> None:
        _check_types(self)
        _check_finite(self)
        checks = {
            "space": self.space in SPACES,
            "evaluations": self.evaluations >= 1,
            "batch": self.batch >= 1,
            "max_attempts": self.max_attempts >= 1,
            "max_index": self.max_index >= 2,
            "components": self.components in COMPONENTS,
            "evaluator": _known_kind(self.evaluator.get("kind")),
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"invalid {name}: {getattr(self, name)!r}")
        try:
            self.reward  # noqa: B018 (checks mu, rho and the terms)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"invalid reward: {exc}") from None
        if self.objectives:
            try:
                objectives(self.objectives)
            except ValueError as exc:
                raise ConfigError(f"invalid objectives: {exc}") from None
        if self.rungs:
            self.fidelity()
        self._check_metric_names()

    def with_execution(self, **options: Any) -> SearchConfig:
        """This configuration with evaluator options of :data:`EXECUTION_OPTIONS` replaced:
        how evaluations run, which a resumed run may change (ConfigError for any other
        option, which defines the run)."""
        fixed = sorted(set(options) - EXECUTION_OPTIONS)
        if fixed:
            raise ConfigError(f"{', '.join(fixed)} define(s) the run and cannot change")
        return dataclasses.replace(self, evaluator={**self.evaluator, **options})

    def metrics(self) -> frozenset[str] | None:
        """The metric names the run's evaluator gives (``accuracy`` included), read from its
        options without building it; None when they are not known up front (an evaluator
        given by import path, or own training)."""
        options = {k: v for k, v in self.evaluator.items() if k != "kind"}
        metrics_of = EVALUATOR_METRICS.get(self.evaluator["kind"])
        return None if metrics_of is None else metrics_of(options)

    def _check_metric_names(self) -> None:
        """ConfigError naming the first reward term, objective or constraint whose metric the
        evaluator does not give (it would silently do nothing)."""
        known = self.metrics()
        if known is None:
            return
        goals = objectives(self.objectives) if self.objectives else ()
        used = {
            "reward_terms": list(self.reward_terms),
            "objectives": [o.metric for o in goals],
            "constraints": list(self.constraints),
        }
        for name, metrics in used.items():
            for metric in metrics:
                if metric not in known and not (name == "objectives" and metric in MAXIMISED):
                    raise ConfigError(
                        f"invalid {name}: unknown metric {metric!r}; the "
                        f"{self.evaluator['kind']} evaluator gives {', '.join(sorted(known))}"
                    )

    def fidelity(self) -> Rungs | None:
        """The rungs, or None for the plain early stop (ConfigError for bad ones)."""
        if not self.rungs:
            return None
        try:
            return Rungs(tuple(self.rungs), self.eta)
        except ValueError as exc:
            raise ConfigError(f"invalid rungs: {exc}") from None

    def reward_for(self, iteration: int) -> RewardConfig:
        """The reward of candidates proposed in ``iteration``: :attr:`reward`, plus with
        objectives a term ``w * ln(value)`` per cost objective with a weight ``w`` drawn in
        ``[0, steer_weight]`` for the iteration (a pure function of seed and iteration, so
        a resumed run draws the same)."""
        base = self.reward
        if not self.objectives:
            return base
        steered = steering_terms(
            objectives(self.objectives), self.seed, iteration, self.steer_weight
        )
        return dataclasses.replace(base, terms={**base.terms, **steered})

    @property
    def reward(self) -> RewardConfig:
        """Eq. (7) with ``mu`` and ``rho``, plus ``reward_terms``."""
        extra = RewardConfig.terms_from_dict(self.reward_terms)
        return RewardConfig.paper(self.mu, self.rho, extra)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchConfig:
        """Inverse of :meth:`to_dict`; unknown fields and values of the wrong type raise
        :class:`ConfigError` naming the field."""
        if not isinstance(data, dict):
            raise ConfigError(f"a configuration must be an object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown configuration field(s): {', '.join(unknown)}")
        if "count_duplicates" not in data:  # written by 0.1, which counted them
            data = {**data, "count_duplicates": True}
        return cls(**data)


def _check_types(config: SearchConfig) -> None:
    """ConfigError naming the first field whose value is not of its annotated type (a
    hand-edited stored configuration, say). Only the outer type is checked; integers pass
    as floats, lists as tuples; booleans are not integers."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value, hint = getattr(config, f.name), hints[f.name]
        if not _matches(value, hint):
            raise ConfigError(
                f"invalid {f.name}: expected {_type_name(hint)}, got "
                f"{type(value).__name__} {value!r}"
            )


def _check_finite(config: SearchConfig) -> None:
    """ConfigError naming the first field holding a NaN or infinite number, at any depth
    (e.g. a strategy option ``q_init=Infinity``): such a value would fail every candidate
    or every resume, so it is refused before a run exists."""
    for f in dataclasses.fields(config):
        for path, value in _numbers(getattr(config, f.name), f.name):
            if not math.isfinite(value):
                raise ConfigError(f"invalid {path}: {value} is not a finite number")


def _numbers(value: Any, path: str) -> typing.Iterator[tuple[str, float]]:
    """Every float inside ``value`` (nested dicts and lists) with its path."""
    if isinstance(value, float):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _numbers(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _numbers(item, f"{path}[{index}]")


def _matches(value: Any, hint: Any) -> bool:
    if hint is Any:
        return True
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    kind = typing.get_origin(hint) or hint
    if kind is type(None):
        return value is None
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, int | float)
    if kind is tuple:  # JSON stores tuples as lists
        return isinstance(value, tuple | list)
    return isinstance(value, kind)


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in typing.get_args(hint))
    kind = typing.get_origin(hint) or hint
    return {dict: "an object", list: "a list", type(None): "null"}.get(
        kind, getattr(kind, "__name__", str(kind))
    )


def _nb201_space(config: SearchConfig) -> Space:
    from blockqnn.nb201 import NB201Space

    return NB201Space()


#: NSC layer types offered per ``components`` setting.
COMPONENTS = {"pcc": nsc.PCC_TYPES, "separate": nsc.SEPARATE_TYPES}

SPACES = {
    "nsc": lambda config: NSCSpace(config.max_index, COMPONENTS[config.components]),
    "nb201": _nb201_space,
}


def _tabular(options: dict[str, Any]) -> Evaluator:
    from blockqnn.tabular import TabularEvaluator

    return TabularEvaluator(**options)


def _training(options: dict[str, Any]) -> Evaluator:
    from blockqnn.train.evaluator import TrainingEvaluator

    return TrainingEvaluator.from_dict(options)


#: Evaluator kinds built in. Any other kind is the import path ``module:qualname`` of a
#: factory called with the options (plain data) that returns an Evaluator, so a run can
#: store, and workers and ``--resume`` rebuild, an evaluator from outside blockqnn.
EVALUATORS = {"tabular": _tabular, "train": _training}


def _tabular_metrics(options: dict[str, Any]) -> frozenset[str]:
    """The reward column as ``accuracy``, the test column's ``test_accuracy``, and the
    metric columns' names."""
    test = ("test_accuracy",) if options.get("test_column") else ()
    return frozenset({"accuracy", *test, *(options.get("metric_columns") or {})})


def _training_metrics(options: dict[str, Any]) -> frozenset[str] | None:
    """Accuracy, the network's profile, and its latency unless ``latency_batch`` is None;
    None with an own training function (``trainer``), whose further metrics are its own."""
    if options.get("trainer"):
        return None
    latency = LATENCY_METRICS if options.get("latency_batch", 1) is not None else ()
    return frozenset({"accuracy", *PROFILE_METRICS, *latency})


#: Per built-in evaluator kind: the metric names it gives, from its options.
EVALUATOR_METRICS = {"tabular": _tabular_metrics, "train": _training_metrics}


def _known_kind(kind: Any) -> bool:
    return kind in EVALUATORS or (isinstance(kind, str) and ":" in kind)


def make_space(config: SearchConfig) -> Space:
    """The search space a configuration describes."""
    return SPACES[config.space](config)


def make_evaluator(config: SearchConfig) -> Evaluator:
    """The evaluator a configuration describes."""
    options = {k: v for k, v in config.evaluator.items() if k != "kind"}
    kind = config.evaluator["kind"]
    return (EVALUATORS[kind] if kind in EVALUATORS else resolve(kind))(options)
