"""Single sources of truth: the registries drive the CLI, the docs and the executor
factory, and the search core never imports torch."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from blockqnn import cli
from blockqnn.config import COMPONENTS, SPACES, SearchConfig
from blockqnn.data.loader import SOURCES
from blockqnn.execution import InlineExecutor, ProcessExecutor
from blockqnn.execution.factory import EXECUTORS, ExecutorSpec, make_executor
from blockqnn.export import FORMATS
from blockqnn.strategies import STRATEGIES

ROOT = Path(__file__).resolve().parents[1]
CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"  # noqa: E501
TABLE = ROOT.parent / "shared" / "data" / "nb201" / "cifar10_valid.csv"

#: Modules of the search core: the loop, the store, configuration, spaces, strategies,
#: rewards, executors and the command line's entry point (which imports torch lazily).
CORE = (
    "blockqnn.search", "blockqnn.store", "blockqnn.config", "blockqnn.space", "blockqnn.nsc",
    "blockqnn.nb201", "blockqnn.tabular", "blockqnn.strategies", "blockqnn.evaluation",
    "blockqnn.reward", "blockqnn.execution", "blockqnn.execution.factory", "blockqnn.cli",
    "blockqnn.options", "blockqnn.resume", "blockqnn.rundir", "blockqnn.runner",
    "blockqnn.summary",
)  # fmt: skip


def choices(command: str, option: str) -> list[str]:
    """The choices the CLI offers for ``command``'s ``option``."""
    subparsers = next(
        a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    )
    parser = subparsers.choices[command]
    return next(a.choices for a in parser._actions if option in a.option_strings)


def test_cli_choices_are_the_registries() -> None:
    assert choices("search", "--space") == sorted(SPACES)
    assert choices("search", "--strategy") == sorted(STRATEGIES)
    assert choices("search", "--components") == sorted(COMPONENTS)
    # the CLI names the formats itself so that it imports no torch; they must agree
    assert list(choices("export", "--format")) == ["json", *FORMATS]


@pytest.mark.parametrize(
    ("kind", "names"),
    [("strategy", STRATEGIES), ("space", SPACES), ("dataset", SOURCES), ("format", FORMATS)],
)
def test_readme_documents_every_registered_name(kind: str, names) -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [n for n in names if f"`{n}" not in readme]
    assert not missing, f"README.md does not document {kind}(s) {missing}"


def test_search_core_imports_no_torch() -> None:
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in CORE)
        + "loaded = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        + "assert not loaded, loaded[:5]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def tabular_config() -> SearchConfig:
    evaluator = {"kind": "tabular", "table": str(TABLE), "reward_column": "valid-accuracy"}
    return SearchConfig(space="nb201", evaluations=4, batch=2, evaluator=evaluator)


def test_make_executor_builds_each_local_kind() -> None:
    config = tabular_config()
    assert set(EXECUTORS) == {"local", "dask"}
    with make_executor(ExecutorSpec(), config) as inline:  # a table: in-process by default
        assert isinstance(inline, InlineExecutor) and inline.slots == 1
    with make_executor(ExecutorSpec(workers=2), config) as pool:
        assert isinstance(pool, ProcessExecutor) and pool.slots == 2
        pool.submit(1, CELL)
        (outcome,) = pool.wait(timeout=60)
        assert outcome.result is not None and outcome.result.accuracy > 90
    assert ExecutorSpec(address="dask://10.0.0.1:8786").kind == "dask"
