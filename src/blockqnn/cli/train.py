"""``blockqnn train``: the final training of a block, with checkpoints and ``--resume``."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from blockqnn.cli._blocks import RunNetwork, resolve_block, run_network
from blockqnn.cli._errors import UsageError
from blockqnn.cli._types import positive_int
from blockqnn.cli.block import add_network_options, network_config

logger = logging.getLogger(__name__)


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a block's network fully (final training)")
    p.add_argument(
        "--block",
        required=True,
        help="block codes, a known name, RUN_DIR:topK (K-th best) or RUN_DIR:ID (candidate ID)",
    )
    p.add_argument(
        "--dataset",
        help="dataset spec, e.g. digits, cifar10:PATH (default for a RUN_DIR block: the run's)",
    )
    p.add_argument(
        "--epochs",
        type=positive_int,
        required=True,
        help="epochs (paper: 300 CIFAR, 90 ImageNet)",
    )
    p.add_argument("--out", type=Path, required=True, help="directory for checkpoint and model")
    p.add_argument("--resume", action="store_true", help="continue from --out's checkpoint")
    add_network_options(p)
    p.add_argument("--subset", type=int, help="train on this many images (val/test shrink alike)")
    p.add_argument("--batch-size", type=int, help="mini-batch size (recipe default)")
    p.add_argument("--lr", type=float, help="initial learning rate (recipe default)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--amp", action="store_true", help="mixed precision (CUDA only)")
    p.add_argument("--cache-dir", help="dataset cache (default: $BLOCKQNN_CACHE or ~/.cache)")
    p.add_argument("--download", action="store_true", help="download a missing CIFAR archive")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def recipe_from_args(args: argparse.Namespace):
    """The preset's final recipe with ``--batch-size`` and ``--lr`` applied."""
    from blockqnn.train.recipes import FINAL

    overrides = {"batch_size": args.batch_size, "lr": args.lr}
    return dataclasses.replace(
        FINAL[args.preset or "cifar"], **{k: v for k, v in overrides.items() if v is not None}
    )


def apply_run_network(args: argparse.Namespace, network: RunNetwork | None) -> None:
    """Fill the network options (and ``--dataset``) the user did not give from the run the
    block came from, so its network is trained as searched (UsageError without a dataset)."""
    if network is not None:
        for name in ("dataset", "preset", "repeats", "widths", "image_size"):
            if getattr(args, name) is None:
                setattr(args, name, getattr(network, name))
    if args.dataset is None:
        raise UsageError(
            "--dataset is needed unless --block names a run (RUN_DIR:topK or RUN_DIR:ID)"
        )


def load_data(args: argparse.Namespace):
    """The dataset the options name; --classes/--in-channels must agree with it."""
    from blockqnn.data import load_dataset

    data = load_dataset(
        args.dataset,
        subset=args.subset,
        image_size=args.image_size,
        cache_dir=args.cache_dir,
        download=args.download,
    )
    for option, given, actual in (
        ("--classes", args.classes, data.num_classes),
        ("--in-channels", args.in_channels, data.channels),
    ):
        if given is not None and given != actual:
            raise UsageError(f"{option} {given} disagrees with {data.name}'s {actual}")
    return data


def run(args: argparse.Namespace) -> int:
    from blockqnn.train.loop import configure_cpu

    block = resolve_block(args.block, args.max_index)
    network = run_network(args.block)
    apply_run_network(args, network)
    configure_cpu(args.threads)
    data = load_data(args)
    config = network_config(args)
    if network is not None:
        config = dataclasses.replace(config, conv=network.conv)
    origin = f" as in {network.run_dir} (options override it)" if network else ""
    print(
        f"network: {config.preset} preset, N={config.repeats}, widths "
        f"{','.join(map(str, config.widths))}{origin}; data: {data.describe()}"
    )
    with EpochBar(args.epochs, disabled=args.no_progress) as bar:
        try:
            metrics = train(args, block, data, config, bar.update)
        except KeyboardInterrupt:
            logger.warning("interrupted: the last finished epoch is saved; continue with --resume")
            return 130
    print(f"test accuracy: {metrics['test_accuracy']:.2f}%")
    print(f"model: {metrics['model_file']}")
    return 0


def train(args: argparse.Namespace, block, data, config, progress) -> dict:
    """:func:`blockqnn.train.final.train_final` of the network ``config`` with the
    options' settings."""
    from blockqnn.train.final import train_final

    return train_final(
        block,
        data,
        config,
        recipe_from_args(args),
        args.epochs,
        args.out,
        resume=args.resume,
        progress=progress,
        seed=args.seed,
        device=args.device,
        amp=args.amp,
    )


class EpochBar:
    """A tqdm bar of epochs on stderr showing loss, validation accuracy and learning rate."""

    def __init__(self, epochs: int, disabled: bool) -> None:
        self.epochs, self.disabled, self.bar = epochs, disabled, None

    def __enter__(self) -> EpochBar:
        if not self.disabled:
            from tqdm import tqdm

            self.bar = tqdm(total=self.epochs, unit="epoch", dynamic_ncols=True)
        return self

    def update(self, stats) -> None:
        """Progress callback: one finished epoch (an ``EpochStats``)."""
        if self.bar is not None:
            self.bar.n = stats.epoch
            postfix = {"loss": f"{stats.loss:.3f}", "val": f"{stats.val_accuracy:.2f}%"}
            self.bar.set_postfix(postfix, lr=f"{stats.lr:.3g}")

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()
