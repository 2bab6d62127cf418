"""Shared test set-up: one torch thread (one process per core), shared data location."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as a module, imported as when it runs (its folder on
    sys.path, so it can import its neighbours)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.pop(0)


def shared_file(*parts: str) -> Path:
    """A file under ../shared/data; fails (never skips) with a clear message if missing."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.fail(
            f"{path} is missing: these tests need the shared data folder ../shared/data "
            "beside the project root (CI always has it)."
        )
    return path


@pytest.fixture(autouse=True, scope="session")
def _private_dataset_cache(tmp_path_factory):
    """Decoded datasets are cached for the session only, never in the user's home."""
    os.environ["BLOCKQNN_CACHE"] = str(tmp_path_factory.mktemp("dataset-cache"))


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    try:
        import torch
    except ImportError:  # the search core's tests run without torch too
        return
    torch.set_num_threads(1)


# -- report runs, shared by test_report and test_report_page (built once per module) --


@pytest.fixture(scope="module")
def nsc_run(tmp_path_factory) -> Path:
    """A small NSC run with complete, failed and reused candidates."""
    from .test_report import build_nsc_run

    run_dir = tmp_path_factory.mktemp("runs") / "nsc"
    build_nsc_run(run_dir)
    return run_dir


@pytest.fixture(scope="module")
def tabular_runs(tmp_path_factory) -> tuple[Path, Path]:
    """A Q-learning and a random-search run on the NB201 table."""
    from .test_report import search_tabular

    root = tmp_path_factory.mktemp("tabular")
    search_tabular(root / "qlearning", "qlearning")
    search_tabular(root / "random", "random")
    return root / "qlearning", root / "random"
