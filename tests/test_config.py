"""The run configuration: a hand-edited stored configuration is refused, naming the field."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from blockqnn.config import ConfigError, SearchConfig
from blockqnn.search import create_run

VALID = SearchConfig(evaluator={"kind": "train"}).to_dict()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("evaluations", "300", "invalid evaluations: expected int, got str '300'"),
        ("batch", True, "invalid batch: expected int, got bool True"),
        ("dedupe", 1, "invalid dedupe: expected bool, got int 1"),
        ("evaluator", ["train"], "invalid evaluator: expected an object, got list"),
        ("mu", "1", "invalid mu: expected float, got str '1'"),
        ("strategy_options", None, "invalid strategy_options: expected an object"),
    ],
)
def test_wrong_types_name_the_field(field, value, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SearchConfig.from_dict({**VALID, field: value})


def test_numbers_keep_their_meaning():
    config = SearchConfig.from_dict({**VALID, "mu": 2, "rho": 0.5})
    assert (config.mu, config.rho) == (2, 0.5)
    with pytest.raises(ConfigError, match="a configuration must be an object"):
        SearchConfig.from_dict([VALID])


def test_hand_edited_run_config_is_a_clear_error(tmp_path: Path):
    run = tmp_path / "run"
    create_run(run, SearchConfig(**VALID)).close()
    with sqlite3.connect(run / "run.db") as conn:
        edited = {**VALID, "batch": "64"}
        conn.execute("UPDATE meta SET value = ? WHERE key = 'config'", (json.dumps(edited),))
    conn.close()
    proc = subprocess.run(
        [sys.executable, "-m", "blockqnn", "show", str(run)], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{run / 'run.db'}: stored configuration: invalid batch: expected int" in proc.stderr
