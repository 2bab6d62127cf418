"""``blockqnn search`` against real Dask schedulers on loopback: a TLS cluster with
certificates the test makes, clients it refuses, a scheduler without workers (the master
says so, holds the run's lock, and a resume keeps the stored device)."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from blockqnn.execution import Outcome
from blockqnn.execution.dask_cluster import DaskExecutor
from blockqnn.search import open_run

from .conftest import ROOT, shared_file
from .helpers_dask import kill_group, local_cluster, spawn
from .helpers_exec import ScriptEvaluator
from .helpers_tls import make_certificates

TABLE = shared_file("nb201", "cifar10_valid.csv")
CLI = [sys.executable, "-m", "blockqnn"]
NB201 = [
    "search",
    "--space",
    "nb201",
    "--table",
    str(TABLE),
    "--reward-column",
    "valid-accuracy",
    "--evaluations",
    "6",
    "--batch",
    "3",
    "--no-progress",
]


def environment(**changes: str) -> dict[str, str]:
    """This environment with this checkout first on the path, and ``changes``."""
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), **changes}


def start_tls_scheduler(directory: Path, tls: list[str]) -> tuple[subprocess.Popen, str]:
    """``dask scheduler --protocol tls`` on 127.0.0.1 and its address."""
    file = directory / "scheduler.json"
    proc = spawn(
        [
            "dask",
            "scheduler",
            "--protocol",
            "tls",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--dashboard-address",
            ":0",
            "--scheduler-file",
            str(file),
            *tls,
        ]
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            return proc, json.loads(file.read_text())["address"]
        except (OSError, ValueError):  # not written (whole) yet
            time.sleep(0.1)
    kill_group(proc)
    raise AssertionError(f"the TLS scheduler did not start: {proc.stderr.read().decode()}")


def wait_for_workers(env: dict[str, str], address: str, n: int) -> None:
    """Return once ``n`` workers are connected (checked through a TLS client)."""
    code = (
        "import distributed, sys; c = distributed.Client(sys.argv[1], timeout=30); "
        "c.wait_for_workers(int(sys.argv[2]), timeout=60); c.close()"
    )
    subprocess.run([sys.executable, "-c", code, address, str(n)], env=env, check=True, timeout=90)


def test_a_search_over_tls_and_clients_without_certificates(tmp_path):
    certs = make_certificates(tmp_path)
    tls = [
        "--tls-ca-file",
        str(certs["ca"]),
        "--tls-cert",
        str(certs["cert"]),
        "--tls-key",
        str(certs["key"]),
    ]
    client_tls = {
        "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": str(certs["ca"]),
        "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": str(certs["cert"]),
        "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY": str(certs["key"]),
    }
    scheduler, address = start_tls_scheduler(tmp_path, tls)
    assert address.startswith("tls://")
    worker_args = [
        "dask",
        "worker",
        address,
        *tls,
        "--nworkers",
        "1",
        "--nthreads",
        "1",
        "--host",
        "127.0.0.1",
        "--no-dashboard",
    ]
    workers = spawn(worker_args, environment())
    try:
        wait_for_workers(environment(**client_tls), address, 1)
        run_dir = tmp_path / "tls-run"
        args = [*CLI, *NB201, "--executor", address, "--run-dir", str(run_dir)]
        proc = subprocess.run(
            args, env=environment(**client_tls), capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, proc.stderr
        store, _ = open_run(run_dir)
        with store:
            assert store.counts()["complete"] - store.count_reused() == 6
        for executor, expected in (
            (address, "needs TLS"),
            (address.replace("tls://", "tcp://"), "cannot connect"),
        ):
            refused = tmp_path / "refused"
            args = [*CLI, *NB201, "--executor", executor, "--run-dir", str(refused)]
            proc = subprocess.run(
                args, env=environment(), capture_output=True, text=True, timeout=60
            )
            assert proc.returncode == 2
            lines = proc.stderr.strip().splitlines()
            assert len(lines) == 1 and expected in lines[0], proc.stderr
            assert not refused.exists()
    finally:
        kill_group(workers)
        kill_group(scheduler)


def read_until(proc: subprocess.Popen, text: str, timeout: float = 120) -> str:
    """Read ``proc``'s stderr until a line holds ``text``; that line."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 1.0)
        line = proc.stderr.readline() if ready else ""
        if text in line:
            return line
        if ready and not line:  # EOF: the process ended
            break
    raise AssertionError(f"no line with {text!r} on stderr (exit status {proc.poll()})")


def test_no_workers_is_said_and_the_lock_and_stored_device_hold(tmp_path):
    run_dir = tmp_path / "run"
    search = [
        *CLI,
        "search",
        "--dataset",
        "digits",
        "--epochs",
        "1",
        "-N",
        "1",
        "--widths",
        "8,8,8",
        "--evaluations",
        "2",
        "--no-progress",
        "--run-dir",
        str(run_dir),
    ]
    with local_cluster(n_workers=0) as cluster:
        address = cluster.scheduler_address
        first = subprocess.Popen(
            [*search, "--device", "cuda", "--executor", address],
            env=environment(),
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            line = read_until(first, "has no worker")
            assert "with resources {'GPU': 1}" in line
            resume = [*CLI, "search", "--resume", "--run-dir", str(run_dir), "--no-progress"]
            refused = subprocess.run(
                resume, env=environment(), capture_output=True, text=True, timeout=60
            )
            assert refused.returncode == 2
            assert f"in use by process {first.pid}" in refused.stderr
            shown = subprocess.run([*CLI, "show", str(run_dir)], capture_output=True, timeout=60)
            assert shown.returncode == 0
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
        again = subprocess.Popen(
            [*resume, "--executor", address], env=environment(), stderr=subprocess.PIPE, text=True
        )
        try:  # the killed master's lock is gone; the stored --device cuda still applies
            assert "with resources {'GPU': 1}" in read_until(again, "has no worker")
        finally:
            again.send_signal(signal.SIGKILL)
            again.wait()


def outcomes_within(executor: DaskExecutor, seconds: float) -> list[Outcome]:
    """The first outcomes ``executor.wait`` returns within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        outcomes = executor.wait(timeout=1.0)
        if outcomes:
            return outcomes
    raise AssertionError(f"no outcome within {seconds} s")


def test_a_stalled_dask_evaluation_times_out_and_its_worker_restarts():
    with (
        local_cluster(n_workers=1) as cluster,
        DaskExecutor(cluster.scheduler_address, ScriptEvaluator(), timeout_s=3.0) as executor,
    ):
        executor.submit(1, "sleep 120")
        start = time.monotonic()
        [stalled] = outcomes_within(executor, 60)
        assert stalled.cid == 1 and stalled.lost and "3 s timeout" in stalled.error
        assert 2.5 < time.monotonic() - start < 60
        executor.submit(2, "sleep 0")
        [after] = outcomes_within(executor, 90)
        assert after.cid == 2 and after.result is not None
