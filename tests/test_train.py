"""Training, for real but tiny: scikit-learn's digits (8x8, grey) through networks of widths
(8, 16) with N = 1. The early-stop evaluator and its restart rule, divergence, the
parameter limit, final training with interrupt and resume, model files, the CLI."""

from __future__ import annotations

import json
import pickle
import socket
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from PIL import Image

import blockqnn
from blockqnn import blocks, cli, nsc
from blockqnn.cli import train as train_cli
from blockqnn.cli._blocks import resolve_block
from blockqnn.config import SearchConfig, make_evaluator
from blockqnn.data import load_dataset, normalise
from blockqnn.evaluation import EvaluationError, Result
from blockqnn.model import build, cifar
from blockqnn.profile import count_params
from blockqnn.search import create_run
from blockqnn.train import (
    EARLY_STOP,
    FINAL,
    CheckpointError,
    FinalRecipe,
    ModelFileError,
    TrainingEvaluator,
    save_model,
    train_final,
)
from blockqnn.train import evaluator as evaluator_module
from blockqnn.train.augment import crop_padding, random_crop, random_flip
from blockqnn.train.checkpoint import CHECKPOINT_FORMAT, atomic_save, tagged
from blockqnn.train.loop import Loop

SHORTCUT = blocks.KNOWN["shortcut"]
TINY = cifar(widths=(8, 16), repeats=1)
#: The proxy recipe sized down for a 1,300-image dataset.
FAST = {"batch_size": 64, "lr": 0.01}


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def digits(cache: str):
    return load_dataset("digits", cache_dir=cache)


def make_evaluator_for(cache: str, **options) -> TrainingEvaluator:
    defaults = {"dataset": "digits", "recipe": "proxy", "recipe_overrides": FAST}
    settings = {**defaults, "widths": (8, 16), "repeats": 1, **options}
    return TrainingEvaluator(cache_dir=cache, **settings)


class LoopSpy(Loop):
    """Records the initial learning rate of every loop the evaluator starts."""

    lrs: ClassVar[list[float]] = []

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        LoopSpy.lrs.append(self.base_lr)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    LoopSpy.lrs = []
    monkeypatch.setattr(evaluator_module, "Loop", LoopSpy)
    return LoopSpy.lrs


# -- recipes and augmentation --------------------------------------------------------------


def test_recipe_schedules_and_plain_data() -> None:
    paper = EARLY_STOP["paper"]
    assert [paper.lr_at(e, 12, 1e-3) for e in (0, 4, 5, 9, 10, 11)] == pytest.approx(
        [1e-3, 1e-3, 2e-4, 2e-4, 4e-5, 4e-5]
    )
    cifar_final = FINAL["cifar"]
    assert [cifar_final.lr_at(e, 300, 0.1) for e in (149, 150, 224, 225)] == pytest.approx(
        [0.1, 0.01, 0.01, 0.001]
    )
    for recipe in (*EARLY_STOP.values(), *FINAL.values()):
        data = json.loads(json.dumps(recipe.to_dict()))
        assert type(recipe).from_dict(data) == recipe


def test_random_crop_and_flip() -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.arange(64.0).view(1, 1, 8, 8).repeat(32, 1, 1, 1)
    padded = torch.nn.functional.pad(x[:1], (1, 1, 1, 1))
    windows = [padded[0, :, i : i + 8, j : j + 8] for i in range(3) for j in range(3)]
    cropped = random_crop(x, crop_padding(8), generator)
    assert cropped.shape == x.shape
    assert all(any(torch.equal(c, w) for w in windows) for c in cropped)
    assert len({c.sum().item() for c in cropped}) > 1  # offsets differ per image
    flipped = random_flip(x, generator)
    mirrored = [torch.equal(f, x[0].flip(2)) for f in flipped]
    assert all(m or torch.equal(f, x[0]) for f, m in zip(flipped, mirrored, strict=True))
    assert 0 < sum(mirrored) < len(x)


# -- the early-stop evaluator ---------------------------------------------------------------


def test_evaluator_learns_digits_and_profiles(cache: str) -> None:
    evaluator = make_evaluator_for(cache)
    result = evaluator.evaluate(SHORTCUT)
    assert result.accuracy > 30  # chance is 10%
    config = cifar(widths=(8, 16), repeats=1, num_classes=10, in_channels=1, image_size=8)
    metrics = result.metrics
    assert metrics["params"] == count_params(build(SHORTCUT, config))
    assert 0 < metrics["flops"] < 1e-2  # GFLOPs
    assert metrics["density"] == pytest.approx(nsc.density(nsc.parse(SHORTCUT)))
    assert metrics["latency_ms"] > 0 and 0 < metrics["latency_batch_ms"] < metrics["latency_ms"]
    assert result.extra["latency_host"] == socket.gethostname()
    assert result.extra["latency_device"] == "cpu" and result.extra["latency_batch"] == 64
    assert result.cost_s > 0
    assert result.extra["epochs"] == evaluator.early_stop_recipe().epochs == 4
    assert result.extra["restarts"] == 0
    assert result.extra["lr"] == 0.01 and result.extra["repeats"] == 1
    assert result.extra["images_per_s"] > 0 and 0 <= result.extra["train_accuracy"] <= 100
    assert evaluator.evaluate(SHORTCUT).accuracy == result.accuracy  # seeded by the codes
    # the metrics a run's configuration says this evaluator gives (checked up front)
    config = SearchConfig(evaluator={"kind": "train", **evaluator.to_dict()})
    assert config.metrics() == {"accuracy", *metrics}


def write_blank_folder(root: Path) -> str:
    """Black 8x8 images of two classes in equal numbers: nothing to learn, so every
    network predicts one class and validation accuracy is exactly chance (50%)."""
    for split, count in (("train", 8), ("val", 4), ("test", 2)):
        for label in ("a", "b"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                Image.new("L", (8, 8)).save(folder / f"{i}.png")
    return f"imagefolder:{root}"


def test_restart_rule_at_chance(tmp_path: Path, cache: str, spy: list[float]) -> None:
    spec = write_blank_folder(tmp_path / "blank")
    overrides = {"epochs": 2, "batch_size": 8, "lr": 0.01}
    evaluator = make_evaluator_for(cache, dataset=spec, recipe_overrides=overrides)
    result = evaluator.evaluate(SHORTCUT)
    assert spy == pytest.approx([0.01, 0.004, 0.0016, 0.00064])  # x0.4 per restart
    assert result.extra["restarts"] == 3  # at most 3, then training goes on
    assert result.extra["lr"] == pytest.approx(0.00064)
    assert result.extra["epochs"] == 2 and result.accuracy == 50


def test_diverging_lr_restarts_then_fails(cache: str, spy: list[float]) -> None:
    evaluator = make_evaluator_for(cache, recipe_overrides={"lr": 1e20, "epochs": 2})
    with pytest.raises(EvaluationError, match="diverged: loss is NaN/inf at epoch 1"):
        evaluator.evaluate(SHORTCUT)
    assert spy == pytest.approx([1e20, 4e19, 1.6e19, 6.4e18])


def test_parameter_limit_and_adapted_repeats(cache: str) -> None:
    def params(n: int) -> int:
        return count_params(build(SHORTCUT, cifar(widths=(8, 16), repeats=n, in_channels=1)))

    limit = (params(1) + params(2)) // 2
    strict = make_evaluator_for(cache, repeats=3, max_params=limit)
    with pytest.raises(EvaluationError, match=f"over the parameter limit: {params(3)} > {limit}"):
        strict.evaluate(SHORTCUT)
    adapted = make_evaluator_for(
        cache, repeats=3, max_params=limit, adapt_repeats=True, recipe_overrides={"epochs": 1}
    )
    result = adapted.evaluate(SHORTCUT)
    assert result.extra["repeats"] == 1 and result.metrics["params"] == params(1) <= limit
    hopeless = make_evaluator_for(cache, repeats=3, max_params=100, adapt_repeats=True)
    with pytest.raises(EvaluationError, match=f"{params(1)} > 100"):
        hopeless.evaluate(SHORTCUT)


def test_evaluator_is_plain_picklable_data(cache: str) -> None:
    evaluator = make_evaluator_for(cache, max_params=10**6, adapt_repeats=True)
    assert pickle.loads(pickle.dumps(evaluator)) == evaluator
    data = json.loads(json.dumps(evaluator.to_dict()))
    assert TrainingEvaluator.from_dict(data) == evaluator
    config = SearchConfig(evaluator={"kind": "train", **data})
    assert make_evaluator(config) == evaluator
    with pytest.raises(ValueError, match="unknown TrainingEvaluator option"):
        TrainingEvaluator.from_dict({**data, "epochz": 3})
    with pytest.raises(ValueError, match="unknown EarlyStopRecipe field"):
        TrainingEvaluator(recipe_overrides={"epochz": 3})


# -- final training and model files ---------------------------------------------------------


def final(digits, out: Path, **options) -> dict:
    recipe = FinalRecipe(batch_size=64, lr=0.05)
    return train_final(SHORTCUT, digits, TINY, recipe, 2, out, **options)


def stop_after_epoch_1(stats) -> None:
    if stats.epoch == 1:
        raise KeyboardInterrupt


def test_final_training_resumes_where_it_stopped(tmp_path: Path, digits) -> None:
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        final(digits, out, progress=stop_after_epoch_1)
    assert [p.name for p in out.iterdir()] == ["checkpoint.pt"]  # atomic: no temp file left
    with pytest.raises(CheckpointError, match="exists; resume it"):
        final(digits, out)
    epochs: list[int] = []
    metrics = final(digits, out, resume=True, progress=lambda s: epochs.append(s.epoch))
    assert epochs == [2]  # continued at epoch 2, not 1
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "metrics.json", "model.pt"]
    assert json.loads((out / "metrics.json").read_text()) == metrics
    straight = final(digits, tmp_path / "straight")  # the same run, never interrupted
    assert metrics["history"][1]["loss"] == straight["history"][1]["loss"]
    assert metrics["test_accuracy"] == straight["test_accuracy"] > 10
    assert metrics["best_val_accuracy"] >= metrics["last_val_accuracy"]


def test_model_file_loads_the_trained_network(tmp_path: Path, digits) -> None:
    metrics = final(digits, tmp_path)
    network = blockqnn.load(metrics["model_file"])
    assert network.codes == nsc.format_block(nsc.parse(SHORTCUT)) and not network.training
    assert network.classes == digits.classes and network.mean == digits.mean
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["loop"]["model"]
    trained = build(SHORTCUT, network.config)
    trained.load_state_dict(state)
    x = normalise(digits.x_test, digits.mean, digits.std)
    with torch.no_grad():
        outputs = network(x)
        assert torch.allclose(outputs, trained.eval()(x), atol=1e-5)
    accuracy = 100 * float((outputs.argmax(1) == digits.y_test).double().mean())
    assert accuracy == pytest.approx(metrics["test_accuracy"])


def test_resume_refuses_missing_or_foreign_checkpoint(tmp_path: Path, digits) -> None:
    with pytest.raises(CheckpointError, match="nothing to resume"):
        final(digits, tmp_path, resume=True)
    with pytest.raises(KeyboardInterrupt):
        final(digits, tmp_path, progress=stop_after_epoch_1)
    other = blocks.KNOWN["multi_branch"]
    with pytest.raises(CheckpointError, match="belongs to another training: its codes"):
        train_final(other, digits, TINY, FinalRecipe(batch_size=64), 2, tmp_path, resume=True)


class Foreign:
    """An arbitrary object: unpickling it could run code, so it must be refused."""


def test_model_file_refuses_foreign_content(tmp_path: Path) -> None:
    pickled = tmp_path / "pickled.pt"
    torch.save({"x": Foreign()}, pickled)
    with pytest.raises(ModelFileError, match=r"pickled\.pt: not a blockqnn-model file: .*refused"):
        blockqnn.load(pickled)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(ModelFileError, match=r"garbage\.pt"):
        blockqnn.load(garbage)
    checkpoint = tmp_path / "checkpoint.pt"
    atomic_save(tagged(CHECKPOINT_FORMAT, {}), checkpoint)
    with pytest.raises(ModelFileError, match="it holds 'blockqnn-checkpoint'"):
        blockqnn.load(checkpoint)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    network = build(SHORTCUT, TINY).eval()
    save_model(
        tmp_path / "m.pt", network, classes=list("0123456789"), mean=(0.5,) * 3, std=(1,) * 3
    )
    loaded = blockqnn.load(tmp_path / "m.pt")
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x), network(x))


# -- the command line -----------------------------------------------------------------------


@pytest.fixture
def main(monkeypatch: pytest.MonkeyPatch):
    """``blockqnn.cli.main`` with the train command registered."""
    if train_cli not in cli.COMMANDS:
        monkeypatch.setattr(cli, "COMMANDS", (*cli.COMMANDS, train_cli))
    return cli.main


def test_train_command_end_to_end(tmp_path: Path, cache: str, main, capsys) -> None:
    argv = ["train", "--block", "shortcut", "--dataset", "digits", "--epochs", "1"]
    argv += ["--widths", "8,16", "-N", "1", "--out", str(tmp_path), "--cache-dir", cache]
    assert main([*argv, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "test accuracy:" in out and str(tmp_path / "model.pt") in out
    assert main([*argv, "--no-progress"]) == 2  # refuses to overwrite without --resume
    assert "--resume" in capsys.readouterr().err


def test_train_command_rejects_bad_block(main, capsys) -> None:
    argv = ["train", "--block", "nonsense", "--dataset", "digits", "--epochs", "1", "--out", "x"]
    assert main(argv) == 2
    assert "unknown block 'nonsense'" in capsys.readouterr().err


def test_resolve_block_from_a_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with create_run(run, SearchConfig(evaluator={"kind": "train"})) as store:
        for arch, reward in ((SHORTCUT, 60.0), (blocks.KNOWN["multi_branch"], 70.0)):
            cid = store.add_candidate(arch, nsc.canonical_key(nsc.parse(arch)), 0, 1.0, None)
            store.complete(cid, Result(accuracy=reward), reward, None)
    assert nsc.format_block(resolve_block(f"{run}:top2")) == SHORTCUT
    assert resolve_block(f"{run}:top1") == nsc.parse(blocks.KNOWN["multi_branch"])
    assert resolve_block("shortcut") == nsc.parse(SHORTCUT)
    with pytest.raises(ValueError, match="has 2 ranked candidate"):
        resolve_block(f"{run}:top3")


class Payload:
    """Unpickling this would run a shell command: a model file must never do that."""

    def __reduce__(self):
        import os

        return (os.system, ("echo unpickled",))


def test_bad_model_files_say_which_file_and_what_is_wrong(tmp_path: Path) -> None:
    good = tmp_path / "model.pt"
    save_model(good, build(SHORTCUT, TINY), classes=list("0123456789"), mean=(0,), std=(1,))
    data = good.read_bytes()
    truncated = tmp_path / "truncated.pt"
    for cut in (10, len(data) // 2, len(data) - 10):
        truncated.write_bytes(data[:cut])
        with pytest.raises(ModelFileError) as caught:
            blockqnn.load(truncated)
        assert str(caught.value) == (
            f"{truncated}: not a blockqnn-model file: it is truncated or corrupt "
            "(not a complete torch file)"
        )
    malicious = tmp_path / "malicious.pt"
    torch.save({"format": "blockqnn-model", "x": Payload()}, malicious)
    with pytest.raises(ModelFileError) as caught:
        blockqnn.load(malicious)
    message = str(caught.value)
    assert message.startswith(f"{malicious}: not a blockqnn-model file: it holds a Python object")
    assert "system" in message and "refused" in message
    assert "weights_only" not in message and "will likely succeed" not in message
    record = torch.load(good, weights_only=True)
    record["state_dict"]["renamed.weight"] = record["state_dict"].pop("head.3.weight")
    atomic_save(record, good)
    with pytest.raises(ModelFileError) as caught:
        blockqnn.load(good)
    message = str(caught.value)
    assert message.startswith(f"{good}: model file does not match its network (")
    assert "renamed.weight" in message and "\n" not in message


def test_resume_refuses_a_checkpoint_with_the_wrong_keys(
    tmp_path: Path, cache: str, main, capsys
) -> None:
    argv = ["train", "--block", "shortcut", "--dataset", "digits", "--epochs", "1"]
    argv += ["--widths", "8,16", "-N", "1", "--out", str(tmp_path), "--cache-dir", cache]
    assert main([*argv, "--no-progress"]) == 0
    path = tmp_path / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    model_state = state["loop"]["model"]
    model_state["renamed.weight"] = model_state.pop(next(iter(model_state)))
    atomic_save(state, path)
    capsys.readouterr()
    assert main([*argv, "--no-progress", "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"{path}: checkpoint does not match this training's network" in err
    assert "renamed.weight" in err and "Traceback" not in err
    del state["loop"]
    atomic_save(state, path)
    assert main([*argv, "--no-progress", "--resume"]) == 2
    assert "lacks its 'meta' and 'loop' records" in capsys.readouterr().err
