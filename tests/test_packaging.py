"""A fresh machine: every package the code and its tests import is declared in
``pyproject.toml`` (the library's in the runtime dependencies, the tests', benchmarks' and
experiments' in ``[dev]``), and CI runs the README's test command in a fresh virtualenv, so
an undeclared one fails CI instead of passing on a machine that happens to have it."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Folders whose Python files import only what a ``pip install -e ".[dev]"`` installs.
DEV_FOLDERS = ("tests", "benchmarks", "experiments")
#: Modules the tests write before importing them (``blockqnn export --format py``).
GENERATED = frozenset({"net"})


def canonical(name: str) -> str:
    """A distribution's name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def project() -> dict:
    """``pyproject.toml``'s ``[project]`` table."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def declared(*extras: str) -> set[str]:
    """The runtime distributions of ``pyproject.toml`` and those of ``extras``."""
    table = project()
    lines = table["dependencies"] + [r for e in extras for r in table["optional-dependencies"][e]]
    return {canonical(re.match(r"[A-Za-z0-9._-]+", line).group()) for line in lines}


def imported(folder: Path) -> dict[str, str]:
    """Top-level module name -> a file importing it, for every import under ``folder``."""
    found: dict[str, str] = {}
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def undeclared(folders: list[Path], allowed: set[str]) -> list[str]:
    """``module (file)`` for each third-party import whose distribution is not ``allowed``."""
    local = {p.stem for f in folders for p in f.rglob("*.py")} | {"blockqnn", "tests", *GENERATED}
    owners = packages_distributions()
    missing = []
    for folder in folders:
        for module, where in imported(folder).items():
            if module in sys.stdlib_module_names or module in local:
                continue
            dists = {canonical(d) for d in owners.get(module, [module])}
            if not dists & allowed:
                missing.append(f"{module} ({where})")
    return sorted(set(missing))


def test_the_library_imports_only_its_declared_dependencies():
    # an optional feature (ONNX export, data frames) imports its extra's packages when used
    optional = [e for e in project()["optional-dependencies"] if e != "dev"]
    assert undeclared([ROOT / "src"], declared(*optional)) == []


def test_tests_benchmarks_and_experiments_import_only_dev_dependencies():
    assert undeclared([ROOT / f for f in DEV_FOLDERS], declared("dev")) == []


def test_ci_runs_the_readme_test_command_in_a_fresh_virtualenv():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    command = re.search(r"Set up and run the test suite.*?```bash\n(.+?)\n```", readme, re.S)
    assert command, "README: the test command's block"
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    lines = [line.strip() for line in script.splitlines()]
    assert "set -euo pipefail" in lines
    venv = next(i for i, line in enumerate(lines) if re.match(r"python3? -m venv ", line))
    assert "--system-site-packages" not in script
    activate = next(
        i for i, line in enumerate(lines) if re.match(r"(source|\.) .*/bin/activate", line)
    )
    assert venv < activate < lines.index(command.group(1).strip())
