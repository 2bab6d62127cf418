"""``blockqnn block CODES|NAME``: validate a block and print its layers and costs."""

from __future__ import annotations

import argparse
import json

from blockqnn import nsc
from blockqnn.cli._blocks import add_components_option, resolve_block
from blockqnn.config import COMPONENTS


def register(subparsers) -> None:
    p = subparsers.add_parser("block", help="validate a block, print its layers and costs")
    p.add_argument("codes", help='block codes, e.g. "(1,4,0,0,0) (2,1,3,1,0) ..." or a name')
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_network_options(p)
    add_components_option(p)
    p.set_defaults(func=run)


def add_network_options(p: argparse.ArgumentParser) -> None:
    """Options that describe how a block is stacked (shared by several commands)."""
    p.add_argument(
        "--preset", choices=("cifar", "imagenet"), help="how blocks are stacked (default: cifar)"
    )
    p.add_argument("--repeats", "-N", type=int, help="blocks per stage (preset default)")
    p.add_argument("--widths", type=_ints, help="stage widths, e.g. 32,64,128")
    p.add_argument("--classes", type=int, help="number of classes (preset default)")
    p.add_argument("--image-size", type=int, help="input size (preset default)")
    p.add_argument("--in-channels", type=int, help="input channels (default 3)")
    p.add_argument("--max-index", type=int, default=nsc.DEFAULT_MAX_INDEX)


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def network_config(args: argparse.Namespace):
    """The NetworkConfig the network options describe."""
    from blockqnn import model

    overrides = {
        "repeats": args.repeats,
        "widths": args.widths,
        "num_classes": args.classes,
        "image_size": args.image_size,
        "in_channels": args.in_channels,
    }
    preset = model.imagenet if args.preset == "imagenet" else model.cifar
    return preset(**{k: v for k, v in overrides.items() if v is not None})


def run(args: argparse.Namespace) -> int:
    from blockqnn import profile

    try:
        block = resolve_block(args.codes, args.max_index, COMPONENTS[args.components])
    except nsc.NSCError as exc:
        if args.json:
            print(json.dumps({"valid": False, "error": str(exc), "layer": exc.layer}))
        raise
    config = network_config(args)
    prof = profile.profile(block, config)
    if args.json:
        print(json.dumps(_summary(block, config, prof)))
    else:
        print(_table(block))
        print(
            f"\nnetwork: {config.preset} preset, N={config.repeats}, widths {list(config.widths)}"
        )
        print(
            f"FLOPs:   {prof.gflops:.4f} G   params: {prof.params:,}   density: {prof.density:.4f}"
        )
        print(f"key:     {nsc.canonical_key(block)}")
    return 0


def _summary(block: nsc.Block, config, prof) -> dict:
    return {
        "valid": True,
        "codes": nsc.format_block(block),
        "key": nsc.canonical_key(block),
        "flops": prof.flops,
        "gflops": prof.gflops,
        "params": prof.params,
        "density": prof.density,
        "network": config.to_dict(),
        "layers": [{**layer._asdict(), "label": layer.label()} for layer in block],
    }


def _table(block: nsc.Block) -> str:
    rows = [f"{'index':>5}  {'type':<14}{'kernel':>6}  {'pred1':>5}  {'pred2':>5}  label"]
    for layer in block:
        name = nsc.LayerType(layer.type).name.lower()
        preds = layer.preds + (0, 0)
        rows.append(
            f"{layer.index:>5}  {name:<14}{layer.kernel:>6}  {preds[0]:>5}  {preds[1]:>5}  "
            f"{layer.label()}"
        )
    return "\n".join(rows)
