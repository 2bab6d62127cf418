"""``blockqnn export``: a run's best blocks as JSON, or a network as ONNX, TorchScript or
a standalone ``.py`` file (see :mod:`blockqnn.export`).

``SOURCE`` is a run directory (``--format json``), ``RUN_DIR:topK`` or ``RUN_DIR:ID`` (the
K-th best block of a run, or its candidate ID, stacked with the run's network settings; it
has no trained weights, so the He-initialised network is exported and the command says so)
or ``MODEL_DIR``, what ``blockqnn train --out`` wrote (its ``model.pt``, trained weights).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from blockqnn.cli._blocks import run_candidate
from blockqnn.cli._errors import UsageError
from blockqnn.cli._types import positive_int
from blockqnn.cli.show import candidate_dict
from blockqnn.files import write_text
from blockqnn.search import open_run

#: Formats: JSON of a run's best blocks, or one of :data:`blockqnn.export.FORMATS`.
FORMATS = ("json", "onnx", "torchscript", "py")


def register(subparsers) -> None:
    e = subparsers.add_parser(
        "export", help="write a run's best blocks as JSON, or a network as ONNX/TorchScript/.py"
    )
    e.add_argument(
        "source", help="RUN_DIR (json); RUN_DIR:topK, RUN_DIR:ID or MODEL_DIR (model formats)"
    )
    e.add_argument("--format", choices=FORMATS, default="json", help="what to write")
    e.add_argument("--top", type=positive_int, default=1, help="json: how many of the best blocks")
    e.add_argument("-o", "--output", default="-", help="file to write (json default: stdout)")
    e.set_defaults(func=export)


def export(args: argparse.Namespace) -> int:
    if args.format == "json":
        return _export_json(args.source, args.top, args.output)
    if args.output == "-":
        raise UsageError(f"--format {args.format} needs -o FILE")
    from blockqnn.export import export as export_network

    network, info = load_network(args.source)
    if not info.trained:
        print(
            f"note: {args.source} has no trained weights; exporting the He-initialised network"
            " of the run's settings (train it with `blockqnn train`)",
            file=sys.stderr,
        )
    if args.format == "onnx":
        print(f"exporting {args.output} with torch's ONNX exporter (a minute)", file=sys.stderr)
    difference = export_network(network, info, args.format, args.output)
    weights = f" and {Path(args.output).with_suffix('.pt')}" if args.format == "py" else ""
    print(f"wrote {args.output}{weights} (max abs difference to the network {difference:.1e})")
    return 0


def _export_json(run_dir: str, top: int, output: str) -> int:
    store, config = open_run(run_dir)
    with store:
        best = store.top(top)
    rows = [{"rank": i, **candidate_dict(c)} for i, c in enumerate(best, start=1)]
    text = json.dumps({"space": config.space, "blocks": rows}, indent=2)
    if output == "-":
        sys.stdout.write(text + "\n")
    else:
        write_text(output, text + "\n")
    return 0


def load_network(source: str):
    """The network ``source`` names and its :class:`~blockqnn.export.ModelInfo`."""
    found = run_candidate(source)
    return _from_model(Path(source)) if found is None else _from_run(*found)


def _from_model(path: Path):
    from blockqnn.export import ModelInfo
    from blockqnn.search import DB_NAME
    from blockqnn.train.checkpoint import load
    from blockqnn.train.final import MODEL

    model = path / MODEL if path.is_dir() else path
    if not model.is_file():
        hint = (
            f"{path} is a search run, whose blocks are untrained: export {path}:top1 (its best"
            f" block, He-initialised) or {path}:ID, or train one with `blockqnn train --block "
            f"{path}:top1 --out DIR` and export DIR"
            if (path / DB_NAME).is_file()
            else "give a `blockqnn train --out` directory, RUN_DIR:topK or RUN_DIR:ID"
        )
        raise UsageError(f"{path}: no trained model ({model} is missing); {hint}")
    network = load(model)
    config = network.config
    info = ModelInfo(
        network.codes,
        config.in_channels,
        config.image_size,
        network.classes,
        network.mean,
        network.std,
        trained=True,
        pixel_max=network.pixel_max,
    )
    return network, info


def _from_run(run_dir: str, candidate, config):
    """The He-initialised network of a run's ``candidate`` (of the run's ``config``), with
    the settings and the number of blocks per stage it was evaluated with (the dataset gives
    the shapes)."""
    from blockqnn.export import ModelInfo
    from blockqnn.train.evaluator import searched_network

    if config.space != "nsc":
        raise UsageError(
            f"{run_dir} searched the {config.space!r} space: a table look-up has no network"
            " to export (--format json exports its ranking)"
        )
    network, data = searched_network(config, candidate)
    info = ModelInfo(
        network.codes,
        data.channels,
        data.image_size,
        tuple(data.classes),
        tuple(data.mean),
        tuple(data.std),
        trained=False,
        pixel_max=data.pixel_max,
    )
    return network, info
