"""Latency measurement: median ms per image at batch 1 and at a throughput batch."""

from __future__ import annotations

import socket

import pytest
import torch

from blockqnn.latency import measure_latency
from blockqnn.model import build, cifar


def test_measures_both_batches_and_leaves_the_network_and_random_state_alone() -> None:
    network = build("(1,1,3,0,0) (2,7,0,0,0)", cifar(widths=(8, 16), repeats=1)).train()
    torch.manual_seed(5)
    before = torch.get_rng_state()
    latency = measure_latency(network, 3, 32, batch=16, warmup=1, repeats=3)
    assert torch.equal(torch.get_rng_state(), before) and network.training
    assert latency.ms > 0 and latency.batch_ms > 0 and latency.batch == 16
    assert latency.metrics() == {"latency_ms": latency.ms, "latency_batch_ms": latency.batch_ms}
    details = latency.details()
    assert details["latency_host"] == socket.gethostname() and details["latency_device"] == "cpu"
    assert 0 < details["latency_seconds"] < 60


@pytest.mark.parametrize("options", [{"batch": 0}, {"repeats": 0}, {"warmup": -1}])
def test_bad_settings(options: dict) -> None:
    network = build("(1,1,3,0,0) (2,7,0,0,0)", cifar(widths=(8, 16), repeats=1))
    with pytest.raises(ValueError, match="need batch"):
        measure_latency(network, 3, 32, **options)
