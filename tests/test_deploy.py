"""Clusters started by the search (``--cluster FILE``): the spec file's checks, and a real
search on dask-jobqueue's local job cluster, whose generated job scripts run here as
processes, scaled adaptively from zero workers and stopped at the end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from blockqnn.config import SearchConfig
from blockqnn.execution.deploy import (
    ClusterSpec,
    ClusterSpecError,
    load_cluster_spec,
    start_cluster,
)
from blockqnn.execution.factory import ExecutorSpec, make_executor
from blockqnn.search import Search, create_run
from blockqnn.store import CandidateState

from .conftest import ROOT, shared_file

TABLE = shared_file("nb201", "cifar10_valid.csv")
LOCAL_JOBS = """\
kind: local
minimum: 0
maximum: 2
options:
  cores: 1
  processes: 1
  memory: 1GB
  scheduler_options: {host: 127.0.0.1}
  worker_extra_args: [--host, 127.0.0.1]
"""


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("a.yaml", "kind: sge\n", "kind must be one of slurm, pbs, local, kubernetes, got 'sge'"),
        ("a.yaml", "kind: slurm\nmaximum: 0\n", "maximum must be an integer >= 1, got 0"),
        (
            "a.json",
            '{"kind": "pbs", "minimum": 3, "maximum": 2}',
            "maximum must be an integer >= 3",
        ),
        ("a.toml", 'kind = "slurm"\nworkers = 4\n', "unknown field(s) workers"),
        ("a.yaml", "kind: [slurm\n", "not valid yaml"),
        ("a.yaml", "kind: slurm\noptions: 4\n", "options must be a mapping, got int"),
        ("a.ini", "kind=slurm\n", "a cluster spec is .yaml, .yml, .json or .toml"),
    ],
)
def test_a_bad_spec_file_is_refused_naming_the_field(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ClusterSpecError, match=f"^{path}: .*") as caught:
        load_cluster_spec(path)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_spec_formats_read_alike(tmp_path):
    expected = ClusterSpec("slurm", 1, 8, {"cores": 2, "queue": "gpu"})
    texts = {
        "a.yml": "kind: slurm\nminimum: 1\nmaximum: 8\noptions: {cores: 2, queue: gpu}\n",
        "a.json": '{"kind": "slurm", "minimum": 1, "maximum": 8,'
        ' "options": {"cores": 2, "queue": "gpu"}}',
        "a.toml": 'kind = "slurm"\nminimum = 1\nmaximum = 8\n[options]\ncores = 2\nqueue = "gpu"\n',
    }
    for name, text in texts.items():
        (tmp_path / name).write_text(text)
        assert load_cluster_spec(tmp_path / name) == expected


def test_the_command_refuses_a_bad_spec_before_the_run_exists(tmp_path):
    spec = tmp_path / "cluster.yaml"
    spec.write_text("kind: local\noptions: {cores: 1, memory: 1GB, no_such_option: 3}\n")
    run = tmp_path / "run"
    command = [sys.executable, "-m", "blockqnn", "search", "--space", "nb201", "--table",
               str(TABLE), "--reward-column", "valid-accuracy", "--evaluations", "4",
               "--no-progress", "--cluster", str(spec), "--run-dir", str(run)]  # fmt: skip
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and f"--cluster {spec}: options:" in done.stderr
    assert not run.exists()


def test_a_slurm_job_script_sets_up_the_workers(tmp_path):
    # the SLURM path up to sbatch: the scheduler starts here, the script is generated
    spec = ClusterSpec("slurm", 0, 4, {"cores": 1, "memory": "2GB", "queue": "gpu",
                                       "scheduler_options": {"host": "127.0.0.1"}})  # fmt: skip
    cluster = start_cluster(spec)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#SBATCH -p gpu" in script and f"{sys.executable} -m distributed.cli" in script
    assert "export DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON=" in script
    assert "MALLOC_TRIM_THRESHOLD_" in script


def running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def test_a_search_on_a_local_job_cluster_scales_up_and_stops_its_jobs(tmp_path):
    spec = tmp_path / "cluster.yaml"
    spec.write_text(LOCAL_JOBS)
    config = SearchConfig(
        space="nb201",
        evaluations=12,
        batch=4,
        evaluator={"kind": "tabular", "table": str(TABLE), "reward_column": "valid-accuracy"},
    )
    executor = make_executor(ExecutorSpec(cluster=str(spec)), config)
    assert executor.slots >= 2  # the maximum, before any worker exists
    jobs: dict[str, str] = {}  # job name -> process id, as the jobs start

    def watch(progress) -> None:
        for name, job in list(executor.cluster.workers.items()):
            if getattr(job, "job_id", None):
                jobs[name] = job.job_id
        assert len(executor.cluster.workers) <= 2

    with create_run(tmp_path / "run", config) as store:
        script = executor.cluster.job_script()
        Search(store, config, executor, progress=watch).run()
        candidates = store.candidates()
    assert "distributed.cli.dask_worker" in script
    trained = [c for c in candidates if c.reused_from is None]
    assert len(trained) == 12 and all(c.state == CandidateState.COMPLETE for c in candidates)
    assert jobs, "adaptive scaling started no job"
    assert not [pid for pid in jobs.values() if running(int(pid))]  # all stopped
