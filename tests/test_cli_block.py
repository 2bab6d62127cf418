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


def test_separate_component_types_need_the_separate_space():
    codes = "(1,1,3,0,0) (2,8,0,1,0) (3,7,0,0,0)"
    proc = blockqnn("block", codes)
    assert proc.returncode == 2
    assert "layer 2: type 8 (RELU) is not in this space" in proc.stderr
    assert "exist only with separate components" in proc.stderr
    proc = blockqnn("block", codes, "--components", "separate")
    assert proc.returncode == 0, proc.stderr
    assert "relu" in proc.stdout


def test_too_many_stages_for_the_image_is_a_clear_error():
    proc = blockqnn("block", "shortcut", "--widths", "8,16,32,64,128,256,512")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "no pixel left for stage 7: give at most 6 widths" in proc.stderr


def test_a_width_too_large_to_allocate_is_refused_in_one_line():
    proc = blockqnn("block", "shortcut", "--widths", "1000000000")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        "blockqnn block: error: width 1000000000 is over the largest, 4096 channels"
    )
