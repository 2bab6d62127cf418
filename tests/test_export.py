"""``blockqnn export``: ONNX (checked with onnxruntime), TorchScript and a standalone .py
file give the trained model's outputs; ``RUN:topK`` exports the He-initialised network."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from blockqnn import cli
from blockqnn.train.checkpoint import load

FIXTURES = Path(__file__).parent / "fixtures"
TOLERANCE = 1e-4

#: Runs in a fresh interpreter: imports the exported file alone, runs it on saved inputs.
STANDALONE = """
import sys
import torch
sys.path.insert(0, sys.argv[1])
import net
model = net.load()
x = torch.load(sys.argv[2])
torch.save(model(x).detach(), sys.argv[3])
assert not model.training and net.TRAINED == (sys.argv[4] == "trained")
assert not [m for m in sys.modules if m.startswith("blockqnn")], "imports blockqnn"
"""


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What ``blockqnn train --out`` writes: a briefly trained multi-branch network."""
    out = tmp_path_factory.mktemp("trained")
    status = cli.main([
        "train", "--block", "multi_branch", "--dataset", "digits", "--epochs", "1",
        "-N", "1", "--widths", "8,16", "--out", str(out), "--no-progress",
    ])  # fmt: skip
    assert status == 0
    return out


def images(n: int = 3) -> torch.Tensor:
    return torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(1))


def expected(model_dir: Path, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return load(model_dir / "model.pt")(x).numpy()


def test_onnx_matches_the_trained_model_in_onnxruntime(model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "net.onnx"
    assert cli.main(["export", str(model_dir), "--format", "onnx", "-o", str(out)]) == 0
    model = onnx.load(out)
    onnx.checker.check_model(model)
    meta = json.loads({p.key: p.value for p in model.metadata_props}["blockqnn"])
    assert meta["trained"] and meta["input_shape"] == [1, 1, 8, 8] and len(meta["classes"]) == 10
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = images(5)  # another batch size than the export's check: the batch is dynamic
    got = session.run(None, {"image": x.numpy()})[0]
    assert np.abs(got - expected(model_dir, x)).max() < TOLERANCE


def test_torchscript_matches_the_trained_model(model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "net.ts"
    assert cli.main(["export", str(model_dir / "model.pt"), "--format", "torchscript",
                     "-o", str(out)]) == 0  # fmt: skip
    files = {"blockqnn.json": ""}
    scripted = torch.jit.load(str(out), _extra_files=files)
    assert json.loads(files["blockqnn.json"])["trained"]
    x = images()
    with torch.no_grad():
        got = scripted(x).numpy()
    assert np.abs(got - expected(model_dir, x)).max() < TOLERANCE


def run_standalone(directory: Path, x: torch.Tensor, trained: bool) -> np.ndarray:
    """Import ``directory/net.py`` in a fresh interpreter and return its outputs on ``x``."""
    torch.save(x, directory / "x.pt")
    flag = "trained" if trained else "untrained"
    args = [str(directory), str(directory / "x.pt"), str(directory / "y.pt"), flag]
    subprocess.run([sys.executable, "-c", STANDALONE, *args], check=True, cwd=directory)
    return torch.load(directory / "y.pt").numpy()


def test_standalone_py_matches_the_trained_model(model_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "net.py"
    assert cli.main(["export", str(model_dir), "--format", "py", "-o", str(out)]) == 0
    assert f"wrote {out} and {tmp_path / 'net.pt'}" in capsys.readouterr().out
    assert "blockqnn" not in "".join(
        line for line in out.read_text().splitlines() if "import" in line
    )
    state = torch.load(tmp_path / "net.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())  # a plain state_dict
    x = images()
    got = run_standalone(tmp_path, x, trained=True)
    assert np.abs(got - expected(model_dir, x)).max() < TOLERANCE


def test_a_digits_export_states_the_digits_scale(model_dir: Path, tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    out = tmp_path / "net.py"
    assert cli.main(["export", str(model_dir), "--format", "py", "-o", str(out)]) == 0
    assert "PIXEL_MAX = 16.0" in out.read_text()
    sys.path.insert(0, str(tmp_path))
    try:
        import net
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("net", None)
    raw = torch.tensor(load_digits().images[:200], dtype=torch.float32).unsqueeze(1)  # 0..16
    mean, std = torch.tensor(net.MEAN).view(1, -1, 1, 1), torch.tensor(net.STD).view(1, -1, 1, 1)
    as_documented = net.load()((raw / net.PIXEL_MAX - mean) / std).argmax(1)
    model = load(model_dir / "model.pt")
    pixels = torch.round(raw * (255 / 16)).to(torch.uint8)  # what training saw
    with torch.no_grad():
        trained_on = model((pixels / 255 - mean) / std).argmax(1)
    assert (as_documented == trained_on).float().mean() > 0.97


def test_run_top_k_exports_the_initialised_network(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    shutil.copytree(FIXTURES / "v1_train", run)
    out = tmp_path / "net.py"
    assert cli.main(["export", f"{run}:top2", "--format", "py", "-o", str(out)]) == 0
    assert "has no trained weights; exporting the He-initialised network" in (
        capsys.readouterr().err
    )
    text = out.read_text()
    # the run's second best block (a version-1 run: migrated on open), its N and widths
    assert "(1,3,1,0,0) (2,3,1,1,0) (3,5,0,2,0)" in text and "NOT TRAINED" in text
    assert "nn.Linear(32, 10, bias=True)" in text
    got = run_standalone(tmp_path, torch.randn(2, 1, 8, 8), trained=False)
    assert got.shape == (2, 10) and np.isfinite(got).all()


def test_json_export_stays(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    shutil.copytree(FIXTURES / "v1_nb201", run)
    assert cli.main(["export", str(run), "--top", "2"]) == 0
    blocks = json.loads(capsys.readouterr().out)["blocks"]
    assert [b["rank"] for b in blocks] == [1, 2]
    assert blocks[0]["metrics"]["test_accuracy"] == blocks[0]["test_accuracy"] > 0


def test_run_id_exports_that_candidate(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(FIXTURES / "v1_train", run)
    out = tmp_path / "net.py"
    assert cli.main(["export", f"{run}:1", "--format", "py", "-o", str(out)]) == 0
    assert f"CODES = {load_codes(run, 1)!r}" in out.read_text()


def load_codes(run: Path, cid: int) -> str:
    from blockqnn.search import open_run

    store, _ = open_run(run)
    with store:
        return store.get(cid).arch


def test_a_run_directory_as_a_model_suggests_its_best_block(tmp_path: Path, capsys) -> None:
    run = tmp_path / "demo"
    shutil.copytree(FIXTURES / "v1_train", run)
    assert cli.main(["export", str(run), "--format", "onnx", "-o", "x.onnx"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Errno" not in err
    assert f"export {run}:top1" in err


def test_onnx_export_says_what_it_does_without_warnings(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(FIXTURES / "v1_train", run)
    command = [sys.executable, "-m", "blockqnn", "export", f"{run}:top1", "--format", "onnx"]
    proc = subprocess.run(
        [*command, "-o", str(tmp_path / "net.onnx")], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert "with torch's ONNX exporter" in proc.stderr
    for noise in ("torchvision", "Warning"):
        assert noise not in proc.stderr


def test_export_errors(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    shutil.copytree(FIXTURES / "v1_train", run)
    cases = [
        ([f"{run}:top1", "--format", "py"], "needs -o FILE"),
        ([f"{run}:top1", "--format", "py", "-o", str(tmp_path / "net.txt")], "must be a .py"),
        ([f"{run}:top9", "--format", "onnx", "-o", "x.onnx"], "cannot take top9"),
        ([str(tmp_path), "--format", "onnx", "-o", "x.onnx"], "model.pt"),  # no model there
    ]
    for args, message in cases:
        assert cli.main(["export", *args]) == 2
        assert message in capsys.readouterr().err
