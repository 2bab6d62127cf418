"""PyTorch modules: the op table, the block module and the stacked network presets.

Channel rules (docs/design.md section 6): a convolution is a Pre-activation Convolutional Cell
(ReLU -> Conv -> BN, stride 1, same padding) with the stage width C; pooling (stride 1,
same padding) and identity keep their input's channels; add projects inputs whose
channels differ from C with a 1x1 PCC when the two inputs differ; concat is followed by a
1x1 PCC back to C; the block output concatenates every leaf and applies a 1x1 PCC back
to C, so blocks stack cleanly.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

import torch
from torch import nn

from blockqnn import nsc
from blockqnn.errors import UserError
from blockqnn.nsc import Layer, LayerType


def pcc(in_channels: int, out_channels: int, kernel: int) -> nn.Sequential:
    """Pre-activation Convolutional Cell: ReLU -> Conv (stride 1, same padding) -> BN."""
    return nn.Sequential(
        nn.ReLU(inplace=False),
        nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_channels),
    )


def plain_conv(in_channels: int, out_channels: int, kernel: int) -> nn.Conv2d:
    """A bare convolution (stride 1, same padding): the Fig. 9 separate-components space."""
    return nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=False)


#: How a convolution code is built: the paper's PCC, or a bare Conv (Fig. 9 ablation).
CONVS: dict[str, Callable[[int, int, int], nn.Module]] = {"pcc": pcc, "plain": plain_conv}

#: type -> factory(in_channels, width, kernel) -> (module, out_channels), for one-input
#: ops other than convolution.
OPS: dict[LayerType, Callable[[int, int, int], tuple[nn.Module, int]]] = {
    LayerType.MAX_POOL: lambda c, w, k: (nn.MaxPool2d(k, 1, k // 2), c),
    LayerType.AVG_POOL: lambda c, w, k: (nn.AvgPool2d(k, 1, k // 2, count_include_pad=False), c),
    LayerType.IDENTITY: lambda c, w, k: (nn.Identity(), c),
    LayerType.RELU: lambda c, w, k: (nn.ReLU(), c),
    LayerType.BATCH_NORM: lambda c, w, k: (nn.BatchNorm2d(c), c),
}


class Add(nn.Module):
    """Element-wise sum; when the two inputs' channels differ, those not equal to ``width``
    are first projected to ``width`` by a 1x1 PCC."""

    def __init__(self, channels: Sequence[int], width: int) -> None:
        super().__init__()
        aligned = channels[0] == channels[1]
        self.proj = nn.ModuleList(
            nn.Identity() if aligned or c == width else pcc(c, width, 1) for c in channels
        )
        self.out_channels = channels[0] if aligned else width

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.proj[0](a) + self.proj[1](b)


class Concat(nn.Module):
    """Channel concatenation followed by a 1x1 PCC back to ``width``."""

    def __init__(self, channels: Sequence[int], width: int) -> None:
        super().__init__()
        self.fuse = pcc(sum(channels), width, 1)
        self.out_channels = width

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return self.fuse(xs[0] if len(xs) == 1 else torch.cat(xs, dim=1))


class BlockModule(nn.Module):
    """One block built from NSC codes; maps ``in_channels`` to ``width`` channels at the
    same spatial size. ``conv`` names how convolution codes are built (see CONVS)."""

    def __init__(
        self, codes: Sequence[Layer], in_channels: int, width: int, conv: str = "pcc"
    ) -> None:
        super().__init__()
        layers = nsc.body(codes)
        channels = [in_channels]
        self.nodes = nn.ModuleList()
        self.preds: list[tuple[int, ...]] = []
        for layer in layers:
            module, out = _make_node(layer, [channels[p] for p in layer.preds], width, conv)
            self.nodes.append(module)
            self.preds.append(layer.preds)
            channels.append(out)
        self.leaves = nsc.leaves(codes)
        self.output = Concat([channels[i] for i in self.leaves], width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [x]
        for module, preds in zip(self.nodes, self.preds, strict=True):
            outs.append(module(*[outs[p] for p in preds]))
        return self.output(*[outs[i] for i in self.leaves])


def _make_node(layer: Layer, channels: list[int], width: int, conv: str) -> tuple[nn.Module, int]:
    kind = LayerType(layer.type)
    if kind == LayerType.CONV:
        return CONVS[conv](channels[0], width, layer.kernel), width
    if kind == LayerType.ADD:
        module = Add(channels, width)
        return module, module.out_channels
    if kind == LayerType.CONCAT:
        return Concat(channels, width), width
    return OPS[kind](channels[0], width, layer.kernel)


class NetworkError(ValueError, UserError):
    """A network configuration that cannot be built (the message says which setting)."""


#: Widest stage accepted: a 3x3 convolution of 4096 channels already holds 151M parameters.
MAX_WIDTH = 4096


@dataclass(frozen=True)
class NetworkConfig:
    """How a block is stacked into a whole network (:class:`NetworkError` otherwise)."""

    preset: str = "cifar"  #: "cifar" (3x3 stem) or "imagenet" (stem down-samples by 4)
    widths: tuple[int, ...] = (32, 64, 128)  #: block width per stage; pooling between stages
    repeats: int = 4  #: N, blocks per stage
    num_classes: int = 10  #: classifier outputs
    in_channels: int = 3  #: image channels
    image_size: int = 32  #: input height = width (used for profiling)
    conv: str = "pcc"  #: convolution codes as "pcc" (paper) or "plain" (Fig. 9 ablation)

    def __post_init__(self) -> None:
        if self.preset not in STEMS:
            raise NetworkError(f"unknown preset {self.preset!r}; presets: {', '.join(STEMS)}")
        if self.conv not in CONVS:
            raise NetworkError(f"unknown conv {self.conv!r}; choices: {', '.join(CONVS)}")
        if self.repeats < 1 or not self.widths or min(self.widths) < 1 or self.image_size < 1:
            raise NetworkError(f"need repeats >= 1, positive widths and image size, got {self}")
        if max(self.widths) > MAX_WIDTH:
            largest = max(self.widths)
            raise NetworkError(f"width {largest} is over the largest, {MAX_WIDTH} channels")
        self._check_stages()

    def _check_stages(self) -> None:
        """NetworkError unless every stage keeps at least one pixel: each of the
        ``len(widths) - 1`` 2x2 poolings halves the stem's output (rounding down)."""
        size = STEM_SIZES[self.preset](self.image_size)
        fit = size.bit_length()  # stages whose input is >= 1 pixel: size // 2**k >= 1
        if len(self.widths) > fit:
            widths = ",".join(map(str, self.widths))
            raise NetworkError(
                f"widths {widths} make {len(self.widths)} stages, but a {self.image_size}-pixel "
                f"image ({size} after the {self.preset} stem) has no pixel left for stage "
                f"{fit + 1}: give at most {fit} widths or a larger image size"
            )

    def to_dict(self) -> dict:
        """Plain-data form (JSON-compatible)."""
        return {**asdict(self), "widths": list(self.widths)}

    @classmethod
    def from_dict(cls, data: dict) -> NetworkConfig:
        """Inverse of :meth:`to_dict`."""
        return cls(**{**data, "widths": tuple(data["widths"])})


def cifar(**overrides) -> NetworkConfig:
    """The paper's CIFAR stacking: N = 4, widths [32, 64, 128]."""
    return replace(NetworkConfig(), **overrides)


def imagenet(**overrides) -> NetworkConfig:
    """The paper's ImageNet stacking: N = 3, widths [64, 128, 256, 512], 224x224 input."""
    base = NetworkConfig("imagenet", (64, 128, 256, 512), 3, 1000, 3, 224)
    return replace(base, **overrides)


def _cifar_stem(in_channels: int, width: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width)
    )


def _imagenet_stem(in_channels: int, width: int) -> nn.Module:
    half = max(width // 2, 1)
    return nn.Sequential(
        nn.Conv2d(in_channels, half, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(half),
        nn.ReLU(),
        nn.Conv2d(half, width, 3, padding=1, bias=False),
        nn.BatchNorm2d(width),
        nn.MaxPool2d(3, stride=2, padding=1),
    )


STEMS: dict[str, Callable[[int, int], nn.Module]] = {
    "cifar": _cifar_stem,
    "imagenet": _imagenet_stem,
}

#: The side length each stem makes of an input side ``s`` (stride 2: ``ceil(s / 2)``).
STEM_SIZES: dict[str, Callable[[int], int]] = {
    "cifar": lambda s: s,
    "imagenet": lambda s: math.ceil(math.ceil(s / 2) / 2),
}


class Network(nn.Module):
    """Stem, then ``repeats`` blocks per stage with 2x2 max pooling between stages, then
    ReLU, global average pooling and a linear classifier. ``codes`` holds the block text."""

    def __init__(self, codes: Sequence[Layer], config: NetworkConfig) -> None:
        super().__init__()
        self.codes = nsc.format_block(codes)
        self.config = config
        stages: list[nn.Module] = [STEMS[config.preset](config.in_channels, config.widths[0])]
        channels = config.widths[0]
        for s, width in enumerate(config.widths):
            if s:
                stages.append(nn.MaxPool2d(2))
            for _ in range(config.repeats):
                stages.append(BlockModule(codes, channels, width, config.conv))
                channels = width
        self.features = nn.Sequential(*stages)
        self.head = nn.Sequential(
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(channels, config.num_classes),
        )
        he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def he_init(module: nn.Module) -> None:
    """MSRA (He) initialisation: normal fan-out for convolutions, unit BN, zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, nonlinearity="linear")
            nn.init.zeros_(m.bias)


def build(codes: Sequence[Layer] | str, config: NetworkConfig | None = None) -> Network:
    """Build the network for a block (codes or code text) with a stacking config.

    The block is validated (NSCError on invalid codes); the search space's maximum index
    is not enforced here, since it limits the search, not what can be built.
    """
    return Network(nsc.as_block(codes, sys.maxsize), config or cifar())
