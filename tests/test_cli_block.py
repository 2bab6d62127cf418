"""``blockqnn block``: the layer table, JSON output and exit codes, via the real program."""

from __future__ import annotations

import json
import subprocess
import sys

from blockqnn import blocks


def blockqnn(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "blockqnn", *args], capture_output=True, text=True, timeout=300
    )


def test_block_by_name_prints_table_and_costs():
    proc = blockqnn("block", "shortcut")
    assert proc.returncode == 0, proc.stderr
    assert "Conv,3" in proc.stdout and "Add" in proc.stdout
    assert "params: 1,560,362" in proc.stdout
    assert "density: 1.0000" in proc.stdout


def test_block_json():
    proc = blockqnn("block", blocks.KNOWN["multi_branch"], "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["valid"] is True
    assert data["density"] == 12 / 11
    assert data["flops"] > 0 and data["params"] > 0
    assert data["codes"] == blocks.KNOWN["multi_branch"]


def test_invalid_block_exits_2_with_message():
    proc = blockqnn("block", "(1,4,0,0,0) (2,1,4,1,0) (3,7,0,0,0)")
    assert proc.returncode == 2
    assert "layer 2: kernel 4 not allowed for CONV" in proc.stderr
    proc = blockqnn("block", "(1,4,0,0,0) (2,1,4,1,0) (3,7,0,0,0)", "--json")
    assert proc.returncode == 2
    assert json.loads(proc.stdout) == {
        "valid": False,
        "error": "layer 2: kernel 4 not allowed for CONV (1, 3, 5)",
        "layer": 2,
    }


def test_unknown_name_lists_known_blocks():
    proc = blockqnn("block", "resnet")
    assert proc.returncode == 2
    assert "known blocks: multi_branch, shortcut" in proc.stderr


def test_network_options_change_the_costs():
    small = json.loads(blockqnn("block", "shortcut", "--json", "-N", "1").stdout)
    big = json.loads(blockqnn("block", "shortcut", "--json", "--widths", "80,160,320").stdout)
    default = json.loads(blockqnn("block", "shortcut", "--json").stdout)
    assert small["params"] < default["params"] < big["params"]
