"""Taking a network away without blockqnn: ONNX, TorchScript, or a standalone ``.py`` file.

Every export is checked before it is reported done: the written model is loaded back
(onnxruntime for ONNX, ``torch.jit.load`` for TorchScript, an import of the ``.py`` file)
and run on the same random input as the original network in eval mode; a maximum
absolute difference above :data:`TOLERANCE` raises :class:`ExportError`.

The standalone ``.py`` file is generated from the network's ``torch.fx`` graph: one flat
``torch.nn.Module`` whose leaf layers are plain ``torch.nn`` modules constructed from
their settings, and whose ``forward`` is the traced graph. Its weights go beside it as a
plain ``state_dict`` (``net.py`` -> ``net.pt``); ``net.load()`` returns the module with
them, in eval mode. Inputs are normalised images ``(x / PIXEL_MAX - MEAN) / STD`` in NCHW
layout, for every format.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import re
import sys
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.fx
from torch import nn

from blockqnn.errors import UserError
from blockqnn.files import replacing

logger = logging.getLogger(__name__)

#: Largest accepted difference between the exported and the original network's outputs.
TOLERANCE = 1e-4
#: Batch of the random input every export is checked on.
CHECK_BATCH = 2


class ExportError(ValueError, UserError):
    """An export that cannot be written (the message says what to change), or whose result
    disagrees with the network."""


@dataclass(frozen=True)
class ModelInfo:
    """What a user of an exported network needs to know besides its weights."""

    codes: str  #: the block's Network Structure Codes
    in_channels: int
    image_size: int
    classes: tuple[str, ...]  #: output names, in order
    mean: tuple[float, ...]  #: per-channel input normalisation
    std: tuple[float, ...]
    trained: bool  #: False for a freshly (He-) initialised network
    #: the brightest pixel of the dataset's own scale: inputs are ``(x / pixel_max - mean) /
    #: std`` (255; 16 for scikit-learn's digits, whose values are 0..16)
    pixel_max: float = 255.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible dict."""
        return {
            "codes": self.codes,
            "input_shape": [1, self.in_channels, self.image_size, self.image_size],
            "classes": list(self.classes),
            "mean": list(self.mean),
            "std": list(self.std),
            "pixel_max": self.pixel_max,
            "trained": self.trained,
        }


def export(network: nn.Module, info: ModelInfo, fmt: str, path: str | Path) -> float:
    """Write ``network`` in format ``fmt`` (a key of :data:`FORMATS`) to ``path``.

    The model is written to a temporary file beside ``path`` and checked there; only a
    model that passed the check replaces ``path`` (a ``.py`` file's ``.pt`` weights
    first), so a failure, a kill or a full disk never leaves an unchecked or truncated file
    under the final name. Returns the checked maximum absolute output difference. Raises
    :class:`ExportError` for an unknown format and when the export fails or disagrees, or
    (naming the ``[export]`` extra) when ONNX support is not installed, and
    :class:`~blockqnn.files.WriteError` when the file cannot be written.
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    network = network.cpu().eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (CHECK_BATCH, info.in_channels, info.image_size, info.image_size)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = network(x)
    with replacing(path, companions=(".pt",) if fmt == "py" else ()) as tmp:
        run_exported = FORMATS[fmt](network, info, tmp, x)
        with torch.inference_mode():
            difference = float((run_exported(x) - expected).abs().max())
        if not difference <= TOLERANCE:
            raise ExportError(
                f"{path}: exported {fmt} model differs by {difference:.3g} > {TOLERANCE}"
            )
    logger.info("exported %s to %s (max abs difference %.2e)", fmt, path, difference)
    return difference


_Runner = Callable[[torch.Tensor], torch.Tensor]


def _onnx(network: nn.Module, info: ModelInfo, path: Path, x: torch.Tensor) -> _Runner:
    """torch's ONNX exporter, batch dimension dynamic; run back with onnxruntime."""
    try:
        import onnxruntime
        import onnxscript  # noqa: F401 (torch's exporter needs it)
    except ImportError as exc:
        raise ExportError(f"ONNX export needs {exc.name}: pip install 'blockqnn[export]'") from exc
    logger.info("ONNX: tracing the network with torch.export (the slow step)")
    try:
        with _quiet_onnx_exporter():
            program = torch.onnx.export(
                network,
                (x,),
                input_names=["image"],
                output_names=["logits"],
                dynamic_shapes=({0: torch.export.Dim("batch")},),
                dynamo=True,
                verbose=False,
            )
        program.model.metadata_props["blockqnn"] = json.dumps(info.to_dict())
        logger.info("ONNX: writing %s", path)
        program.save(str(path))
    except Exception as exc:
        raise ExportError(f"{path}: ONNX export failed ({exc})") from exc
    logger.info("ONNX: checking %s in onnxruntime", path)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def run(inputs: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {"image": inputs.numpy()})[0])

    return run


@contextlib.contextmanager
def _quiet_onnx_exporter() -> Iterator[None]:
    """While torch's ONNX exporter runs: no warnings about torchvision operators it skips
    (blockqnn uses none) nor deprecation warnings from its internals, noise to a user;
    its errors still show."""
    exporter = logging.getLogger("torch.onnx")
    level = exporter.level
    exporter.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        exporter.setLevel(level)


def _torchscript(network: nn.Module, info: ModelInfo, path: Path, x: torch.Tensor) -> _Runner:
    """A traced TorchScript module with the model information as ``blockqnn.json``
    (PyTorch deprecates TorchScript; its deprecation warnings are silenced here)."""
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            traced = torch.jit.trace(network, x)
            extra = {"blockqnn.json": json.dumps(info.to_dict())}
            buffer = io.BytesIO()  # torch.jit.save to a file aborts the process on ENOSPC
            torch.jit.save(traced, buffer, _extra_files=extra)
            path.write_bytes(buffer.getvalue())
            return torch.jit.load(str(path)).eval()
    except OSError:
        raise  # the file cannot be written: a WriteError naming it
    except Exception as exc:
        raise ExportError(f"{path}: TorchScript export failed ({exc})") from exc


def _python(network: nn.Module, info: ModelInfo, path: Path, x: torch.Tensor) -> _Runner:
    """The standalone source and its ``state_dict`` beside it; run back by importing it."""
    if path.suffix != ".py":
        raise ExportError(f"{path}: a Python export must be a .py file")
    source, state = python_source(network, info)
    path.write_text(source)
    buffer = io.BytesIO()  # written by Python, so a full disk is an OSError
    torch.save(state, buffer)
    path.with_suffix(".pt").write_bytes(buffer.getvalue())
    return _import_file(path).load()


def python_source(network: nn.Module, info: ModelInfo) -> tuple[str, dict[str, torch.Tensor]]:
    """The text of a standalone module defining ``network`` with plain ``torch.nn``, and
    the ``state_dict`` that its ``load()`` reads (keys of the flat module)."""
    traced = torch.fx.symbolic_trace(network)
    names = _flat_names(traced)
    flat = nn.Module()
    lines = []
    for path, name in names.items():
        module = traced.get_submodule(path)
        lines.append(f"        self.{name} = {_constructor(module, path)}")
        flat.add_module(name, module)
    graph = _flat_graph(traced.graph, names)
    code = torch.fx.GraphModule(flat, graph).code.strip("\n")
    forward = [_RELEASE.sub("", line).rstrip() for line in code.splitlines()]
    state = {k: v.detach().cpu().clone() for k, v in flat.state_dict().items()}
    return _TEMPLATE.format(
        codes=info.codes,
        layers="\n".join(lines),
        forward="\n".join(f"    {line}" if line else "" for line in forward),
        classes=repr(tuple(info.classes)),
        mean=repr(tuple(info.mean)),
        std=repr(tuple(info.std)),
        pixel_max=info.pixel_max,
        shape=(1, info.in_channels, info.image_size, info.image_size),
        trained="" if info.trained else _UNTRAINED,
        is_trained=info.trained,
    ), state


#: fx's ``;  a = b = None`` suffixes that release intermediate tensors early.
_RELEASE = re.compile(r";\s+[\w =]+ = None$")


def _flat_names(traced: torch.fx.GraphModule) -> dict[str, str]:
    """Every called module's dotted path -> an attribute name (dots become underscores)."""
    paths = [n.target for n in traced.graph.nodes if n.op == "call_module"]
    names = {path: "m_" + path.replace(".", "_") for path in dict.fromkeys(paths)}
    if len(set(names.values())) != len(names):
        raise ExportError("module paths collide when flattened")
    return names


def _flat_graph(graph: torch.fx.Graph, names: dict[str, str]) -> torch.fx.Graph:
    """A copy of ``graph`` calling the flat attributes, without type annotations."""
    flat = torch.fx.Graph()
    env: dict[torch.fx.Node, torch.fx.Node] = {}
    for node in graph.nodes:
        copy = flat.node_copy(node, lambda n: env[n])
        if node.op == "call_module":
            copy.target = names[node.target]
        copy.type = None
        env[node] = copy
    return flat


def _constructor(module: nn.Module, path: str) -> str:
    """Source text constructing ``module`` (one of the plain layers networks use)."""
    build = _CONSTRUCTORS.get(type(module))
    if build is None:
        raise ExportError(f"cannot export layer {path} of type {type(module).__name__}")
    return build(module)


_CONSTRUCTORS: dict[type, Callable[[Any], str]] = {
    nn.Conv2d: lambda m: (
        f"nn.Conv2d({m.in_channels}, {m.out_channels}, {m.kernel_size}, stride={m.stride},"
        f" padding={m.padding}, dilation={m.dilation}, groups={m.groups},"
        f" bias={m.bias is not None})"
    ),
    nn.BatchNorm2d: lambda m: (
        f"nn.BatchNorm2d({m.num_features}, eps={m.eps}, momentum={m.momentum},"
        f" affine={m.affine}, track_running_stats={m.track_running_stats})"
    ),
    nn.Linear: lambda m: f"nn.Linear({m.in_features}, {m.out_features}, bias={m.bias is not None})",
    nn.ReLU: lambda m: "nn.ReLU()",
    nn.Identity: lambda m: "nn.Identity()",
    nn.MaxPool2d: lambda m: (
        f"nn.MaxPool2d({m.kernel_size!r}, stride={m.stride!r}, padding={m.padding!r},"
        f" dilation={m.dilation!r}, ceil_mode={m.ceil_mode})"
    ),
    nn.AvgPool2d: lambda m: (
        f"nn.AvgPool2d({m.kernel_size!r}, stride={m.stride!r}, padding={m.padding!r},"
        f" ceil_mode={m.ceil_mode}, count_include_pad={m.count_include_pad})"
    ),
    nn.AdaptiveAvgPool2d: lambda m: f"nn.AdaptiveAvgPool2d({m.output_size!r})",
    nn.Flatten: lambda m: f"nn.Flatten({m.start_dim}, {m.end_dim})",
}


def _import_file(path: Path) -> Any:
    """Import the module in ``path`` under a unique name (not left in ``sys.modules``)."""
    name = f"_blockqnn_export_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ExportError(f"{path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


#: Exporters by format name: each writes ``path`` and returns a runner of the written model.
FORMATS: dict[str, Callable[[nn.Module, ModelInfo, Path, torch.Tensor], _Runner]] = {
    "onnx": _onnx,
    "torchscript": _torchscript,
    "py": _python,
}

_UNTRAINED = """
NOT TRAINED: these are the He-initialised weights of a fresh network (no trained weights
were exported).
"""

_TEMPLATE = '''"""A network found by BlockQNN, exported as plain PyTorch (no blockqnn needed).

Block: {codes}
Input: float32 images of shape (N, C, H, W) = {shape} (any N), normalised per channel
as (pixels / PIXEL_MAX - MEAN) / STD, pixels on their dataset's own scale (0..PIXEL_MAX).
Output: logits over CLASSES.
{trained}
Usage::

    import net                      # this file, with its weights beside it (.pt)
    model = net.load()              # in eval mode
    logits = model(images)
"""

from pathlib import Path

import torch
from torch import nn

CODES = {codes!r}
TRAINED = {is_trained}
INPUT_SHAPE = {shape}
CLASSES = {classes}
MEAN = {mean}
STD = {std}
PIXEL_MAX = {pixel_max!r}
WEIGHTS = Path(__file__).with_suffix(".pt")


class Network(nn.Module):
    def __init__(self) -> None:
        super().__init__()
{layers}

{forward}


def load(weights=WEIGHTS, device="cpu") -> Network:
    """The network with the weights in ``weights`` (a plain state_dict), in eval mode."""
    model = Network()
    state = torch.load(weights, map_location=device, weights_only=True)
    model.load_state_dict(state)
    return model.to(device).eval()
'''
