"""The reward: named metrics read through a configuration of weights and references."""

from __future__ import annotations

import math

import pytest

from blockqnn.config import ConfigError, SearchConfig
from blockqnn.evaluation import Result
from blockqnn.reward import RewardConfig, Term, reward, reward_of

EVALUATOR = {"kind": "train"}
METRICS = {"accuracy": 80.0, "flops": 0.5, "density": 1.25, "latency_ms": 4.0}


def test_paper_configuration_is_equation_7() -> None:
    expected = 80.0 - 1.0 * math.log(0.5) - 8.0 * math.log(1.25)
    assert reward(METRICS, RewardConfig.paper()) == pytest.approx(expected)
    assert reward(METRICS, RewardConfig.paper(mu=0, rho=0)) == 80.0
    assert reward(METRICS, RewardConfig()) == 80.0


def test_terms_use_references_and_skip_missing_metrics() -> None:
    config = RewardConfig(terms={"latency_ms": Term(2.0, reference=2.0), "params": Term(1.0)})
    assert reward(METRICS, config) == pytest.approx(80.0 - 2.0 * math.log(2.0))
    result = Result(accuracy=80.0, metrics={"latency_ms": 2.0})
    assert reward_of(result, config) == 80.0  # at the reference the term is zero


def test_search_config_adds_terms_to_equation_7() -> None:
    terms = {"latency_ms": {"weight": 1.0}}
    config = SearchConfig(mu=0.5, rho=0.0, reward_terms=terms, evaluator=EVALUATOR)
    assert reward(METRICS, config.reward) == pytest.approx(80.0 - 0.5 * math.log(0.5) - 1.386294)
    assert SearchConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    "terms",
    [{"latency_ms": {"weight": -1.0}}, {"x": {"weight": 1.0, "reference": 0}}, {"x": {"w": 1}}],
)
def test_bad_terms_are_config_errors(terms: dict) -> None:
    with pytest.raises(ConfigError, match="invalid reward"):
        SearchConfig(reward_terms=terms, evaluator=EVALUATOR)


def test_missing_signal_or_non_positive_metric_raise() -> None:
    with pytest.raises(ValueError, match="no 'accuracy' metric"):
        reward({"flops": 1.0}, RewardConfig.paper())
    with pytest.raises(ValueError, match="flops must be positive"):
        reward({"accuracy": 1.0, "flops": 0.0}, RewardConfig.paper())
