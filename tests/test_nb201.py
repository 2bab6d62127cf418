"""The NAS-Bench-201 cell space and the tabular evaluator, on the shared CIFAR-10 table."""

from __future__ import annotations

import os
import pickle
import random
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blockqnn.evaluation import Result
from blockqnn.nb201 import EDGES, OPS, NB201Error, NB201Space, format_ops, parse_ops
from blockqnn.space import Space, walk
from blockqnn.tabular import TableError, TabularEvaluator, best, load_table

TABLE = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nb201" / "cifar10_valid.csv"
)
KNOWN = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
    "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
)
SPACE = NB201Space()


@pytest.fixture(scope="module")
def table_path() -> Path:
    if not TABLE.is_file():
        pytest.fail(
            f"{TABLE} is missing: the NB201 tests require ../shared/data next to the project"
        )
    return TABLE


@pytest.fixture(scope="module")
def evaluator(table_path: Path) -> TabularEvaluator:
    return TabularEvaluator(table_path, "valid-accuracy", "test-accuracy", "valid-all-time")


def all_architectures() -> list[str]:
    """Every architecture, by walking every trajectory of the decision process."""
    found: list[str] = []

    def visit(state, taken):
        if SPACE.is_terminal(state):
            found.append(SPACE.architecture(taken))
            return
        for action in SPACE.actions(state):
            visit(SPACE.step(state, action), [*taken, action])

    visit(SPACE.initial_state(), [])
    return found


def test_space_implements_protocol():
    assert isinstance(SPACE, Space)
    assert SPACE.name == "nb201"
    assert SPACE.initial_state() == (0, None)
    assert SPACE.actions((0, None)) == tuple((1, op) for op in OPS)
    assert SPACE.actions((6, "none")) == ()


def test_space_enumerates_the_whole_table(evaluator):
    archs = all_architectures()
    assert len(archs) == len(set(archs)) == 5 ** len(EDGES) == 15_625
    assert set(archs) == set(evaluator.entries())


def test_random_trajectory_round_trips():
    rng = random.Random(0)
    for _ in range(50):
        taken = walk(SPACE, lambda state, actions: rng.choice(actions))
        arch = SPACE.architecture(taken)
        assert SPACE.parse(SPACE.format(arch)) == arch == SPACE.key(arch)
        assert SPACE.trajectory(arch) == taken
    assert SPACE.parse(f"  {KNOWN}\n") == KNOWN


def test_json_actions_are_accepted():
    assert SPACE.step((0, None), [1, "none"]) == (1, "none")
    with pytest.raises(NB201Error, match="not legal"):
        SPACE.step((0, None), (2, "none"))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("|none~0|+|none~0|none~1|", "expected 3 nodes"),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 must have 2 input edge"),
        ("|none~0|+|none~0|conv~1|+|none~0|none~1|none~2|", "unknown operation 'conv'"),
        ("|none~0|+|none~1|none~0|+|none~0|none~1|none~2|", "input index '1', expected 0"),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|none~3|", "input index '3', expected 2"),
        ("|none0|+|none~0|none~1|+|none~0|none~1|none~2|", "'op~input'"),
        ("none~0+|none~0|none~1|+|none~0|none~1|none~2|", "enclosed in '|'"),
    ],
)
def test_parse_errors_name_the_problem(text, problem):
    with pytest.raises(NB201Error, match=re.escape(problem)) as info:
        SPACE.parse(text)
    assert isinstance(info.value, ValueError)


def test_architecture_rejects_bad_trajectories():
    with pytest.raises(NB201Error, match="6 actions"):
        SPACE.architecture([(1, "none")])
    with pytest.raises(NB201Error, match="decides edge 2"):
        SPACE.architecture([(2, "none")] * 6)
    with pytest.raises(NB201Error, match="unknown operation"):
        format_ops(["none"] * 5 + ["sep_conv"])


@given(st.lists(st.sampled_from(OPS), min_size=6, max_size=6), st.integers(0, 2**32))
def test_mutate_changes_exactly_one_edge(ops, seed):
    arch = format_ops(ops)
    child = SPACE.mutate(arch, random.Random(seed))
    assert SPACE.parse(child) == child != arch
    assert sum(a != b for a, b in zip(parse_ops(arch), parse_ops(child), strict=True)) == 1


def test_evaluator_returns_the_table_numbers(evaluator):
    result = evaluator.evaluate(KNOWN)
    assert isinstance(result, Result)
    assert result.accuracy == pytest.approx(90.76933332)
    assert result.metrics == {"test_accuracy": pytest.approx(90.51333333)}
    assert result.cost_s == pytest.approx(750.8397954)


def test_table_optimum(table_path):
    table = load_table(table_path, "valid-accuracy", "test-accuracy")
    _, top_test = best(table, by="test")
    _, top_valid = best(table)
    assert round(top_test.test, 2) == 91.52
    assert top_test.test == pytest.approx(91.52333, abs=1e-5)
    assert top_valid.reward == pytest.approx(91.607, abs=1e-3)
    with pytest.raises(TableError, match="test column"):
        best(load_table(table_path, "valid-accuracy"), by="test")


def test_evaluator_pickles(evaluator):
    blob = pickle.dumps(evaluator)
    assert len(blob) < 1000
    clone = pickle.loads(blob)
    assert clone == evaluator
    assert clone.evaluate(KNOWN) == evaluator.evaluate(KNOWN)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


GOOD = "ArchitectureString,acc,test\n" + f"{KNOWN},90.5,89.0\n"


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(TableError, match=r"nope\.csv: table file not found"):
        TabularEvaluator(missing, "acc").evaluate(KNOWN)


def test_missing_column_lists_available(tmp_path):
    path = write(tmp_path / "t.csv", GOOD)
    with pytest.raises(
        TableError, match=r"t.csv: no column 'valid'.*ArchitectureString, acc, test"
    ):
        TabularEvaluator(path, "valid").evaluate(KNOWN)
    with pytest.raises(TableError, match="no architecture column"):
        load_table(write(tmp_path / "u.csv", "name,acc\nx,1\n"), "acc")


def test_non_numeric_cell_names_the_row(tmp_path):
    path = write(
        tmp_path / "t.csv", GOOD + "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|,n/a,1\n"
    )
    with pytest.raises(TableError, match=r"t.csv, line 3 \(row 2\): column 'acc' holds 'n/a'"):
        load_table(path, "acc", "test")


def test_unknown_arch_and_duplicate(tmp_path):
    evaluator = TabularEvaluator(write(tmp_path / "t.csv", GOOD), "acc", "test")
    assert evaluator.evaluate(KNOWN) == Result(accuracy=90.5, metrics={"test_accuracy": 89.0})
    with pytest.raises(TableError, match="is not in the table"):
        evaluator.evaluate("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    with pytest.raises(TableError, match="listed twice"):
        load_table(write(tmp_path / "d.csv", GOOD + f"{KNOWN},1,2\n"), "acc")


def test_rewritten_table_is_reread(tmp_path):
    path = write(tmp_path / "t.csv", GOOD)
    evaluator = TabularEvaluator(path, "acc")
    assert evaluator.evaluate(KNOWN).accuracy == 90.5
    write(path, GOOD.replace("90.5", "70.0"))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert evaluator.evaluate(KNOWN).accuracy == 70.0
