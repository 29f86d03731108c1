"""Keras ``.h5`` models (the original Ais's, or anyone's) opened without TensorFlow.

Two results are possible:

* :func:`read_keras_h5` always gives the generic
  :class:`~ais_torch.formats.keras.graph.KerasGraphModule`
  (the file's own graph, run layer by layer);
* :func:`load_keras_model` gives one of *our* architectures with the file's weights when the
  topology matches (so it can be fine-tuned with ``ais_torch.train``), else the generic graph
  wrapped as :class:`KerasModel` (eval mode, ``(B, C, H, W) -> (B, 1, H, W)``).

How topology matching works (:func:`match_arch`). Candidates are the preset named by the
original's title (``arch`` in ``.scnm`` metadata, via ``preset_for_title``) and then every preset
with the same Keras parameter count (built on the meta device, so instantly); a candidate whose
count differs is never tried. For a candidate, the generic graph and our network each run once
on a small input under a ``TorchFunctionMode`` that records the data flow between torch calls
and which module owns each parameter. A depth-first post-order walk from the output (inputs of
every op in argument order, e.g. ``cat([up, skip])``, ``add(shortcut, main)``) lists the
weighted modules in an order that depends only on the topology, not on layer names or on the
order the file lists layers in. The two lists must agree one to one in kind (conv, transposed
conv, BatchNorm, dense), weight shapes, strides and BN epsilon; then the weights are copied and
both networks are run on a random input. Only if the outputs agree (max abs diff <=
:data:`MATCH_TOLERANCE`) is our architecture returned.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ais_torch.errors import AisError, AisInputError, ModelFormatError
from ais_torch.formats.keras.graph import (
    KActivation,
    KBatchNorm,
    KConv,
    KConvTranspose,
    KDense,
    KerasFormatError,
    KerasGraphModule,
    build_graph,
)
from ais_torch.formats.keras.weights import (
    WeightReader,
    check_weight_datasets,
    open_h5,
    read_spec,
    weights_root,
)

if TYPE_CHECKING:
    from ais_torch.archs.base import AisArch

log = logging.getLogger("ais_torch.formats.keras.read")

MATCH_TOLERANCE = 1e-4
"""Largest output difference (on a random input) for which our architecture is accepted."""

H5Source = bytes | str | os.PathLike


def _label(source: H5Source, name: str | None) -> str:
    if name:
        return name
    return f"<{len(source)}-byte Keras .h5>" if isinstance(source, bytes) else str(source)


def read_keras_h5(source: H5Source, *, name: str | None = None) -> KerasGraphModule:
    """The generic graph of a Keras ``.h5`` (path or bytes); ``name`` labels error messages.

    Raises a one-line :class:`ModelFormatError` naming the file for a corrupt or truncated
    file, a ``Lambda`` or unknown layer, or weights that do not fit the graph.
    """
    label = _label(source, name)
    try:
        with open_h5(source) as f:
            root = weights_root(f)
            check_weight_datasets(root)  # every dataset bounded before anything is parsed
            return build_graph(read_spec(f), WeightReader(root))
    except KerasFormatError as err:
        raise ModelFormatError(f"{label}: {err}") from None
    except RecursionError:
        raise ModelFormatError(
            f"{label}: the Keras model_config is nested too deeply; the file is damaged or forged"
        ) from None
    except (OSError, KeyError, IndexError, AttributeError, ValueError, TypeError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ModelFormatError(
            f"{label}: corrupt, truncated or malformed Keras .h5 file "
            f"({type(err).__name__}: {first})"
        ) from None


def load_keras_model(
    source: H5Source,
    *,
    name: str | None = None,
    arch_title: str | None = None,
    n_parameters: int | None = None,
) -> AisArch | KerasModel:
    """Our architecture with the file's weights if the topology matches, else :class:`KerasModel`.

    ``arch_title`` is the original's architecture title (``"VGGNet M"``), ``n_parameters`` its
    stored count; both only rank the candidates (see the module docstring).
    """
    graph = read_keras_h5(source, name=name)
    model = match_arch(graph, arch_title, n_parameters)
    if model is not None:
        return model
    return KerasModel(graph, name=_label(source, name))


# -- the generic graph as a model ---------------------------------------------------------------
class KerasModel(nn.Module):
    """A generic Keras graph that behaves like an ais_torch model, for inference.

    One input ``(B, C, H, W)`` (or ``(B, C, D, H, W)`` for 3D graphs), one output. A ``tanh``
    output (the original's Pix2pix) is clamped to [0, 1], which is what the original does before
    writing a segmentation; other outputs are returned as they are.
    """

    title = "Keras graph"
    arch_name = ""
    preset = None

    def __init__(self, graph: KerasGraphModule, name: str = "") -> None:
        super().__init__()
        if len(graph.inputs) != 1 or len(graph.outputs) != 1:
            raise ModelFormatError(
                f"{name or graph.name}: has {len(graph.inputs)} inputs and {len(graph.outputs)} "
                "outputs; a segmentation model needs exactly one of each"
            )
        from lightning.fabric.utilities.data import AttributeDict

        self.graph = graph
        self.min_size_multiple = graph.min_size_multiple
        self.hparams = AttributeDict(in_channels=graph.in_channels[0] or 1)
        self.clamp_output = output_activation(graph) == "tanh"
        self.eval()

    @property
    def n_parameters(self) -> int:
        return self.graph.n_parameters

    @property
    def n_spatial_dims(self) -> int:
        return int(self.graph.n_spatial)

    @property
    def emits_slab(self) -> bool:
        """A 3D graph predicts its whole slab, as the original's ezm-3d networks do."""
        return self.graph.n_spatial == 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.graph.n_spatial == 3:
            y = depth_first(self.graph(depth_last(x)))
        else:
            y = self.graph(x)
        return y.clamp(0.0, 1.0) if self.clamp_output else y


def depth_last(x: torch.Tensor) -> torch.Tensor:
    """Our slab layout ``(B, C, D, H, W)`` → Keras' 3D order ``(B, C, H, W, D)``.

    The original's 3D networks take ``(B, H, W, D, 1)`` (depth last, channels last); the
    generic graph keeps Keras' spatial order, so a slab is permuted on the way in and out.
    """
    return x.permute(0, 1, 3, 4, 2) if x.ndim == 5 else x


def depth_first(y: torch.Tensor) -> torch.Tensor:
    """Keras ``(B, C, H, W, D)`` → our ``(B, C, D, H, W)``; the inverse of :func:`depth_last`."""
    return y.permute(0, 1, 4, 2, 3) if y.ndim == 5 else y


class _DepthFirstGraph(nn.Module):
    """A 3D Keras graph seen in our slab layout, for tracing and comparing with our networks."""

    def __init__(self, graph: KerasGraphModule) -> None:
        super().__init__()
        self.graph = graph
        self.eval()  # as the graph: BatchNorm on its moving statistics

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return depth_first(self.graph(depth_last(x)))


def output_activation(graph: KerasGraphModule) -> str:
    """Name of the activation the (first) output layer applies, ``""`` if none."""
    op = graph.op(graph.outputs[0][0])
    if isinstance(op, KConv | KConvTranspose | KDense):
        return str(op.activation_name)
    if isinstance(op, KActivation) and op.keras_class == "Activation":
        return str(op.activation_name)
    return ""


# -- mapping onto our architectures -------------------------------------------------------------
class ArchMismatch(Exception):
    """The generic graph and a candidate architecture differ; the reason is the message."""


def match_arch(
    graph: KerasGraphModule, arch_title: str | None = None, n_parameters: int | None = None
) -> AisArch | None:
    """One of our architectures carrying ``graph``'s weights, or None (see module docstring)."""
    if len(graph.inputs) != 1 or len(graph.outputs) != 1 or graph.n_spatial not in (2, 3):
        return None
    in_channels = graph.in_channels[0] or 1
    for preset in candidate_presets(graph, arch_title, n_parameters):
        try:
            model = _build(preset, in_channels)
            diff = map_weights(graph, model)
        except (ArchMismatch, AisError, RuntimeError) as err:
            log.info("Keras graph does not map onto preset %s: %s", preset, err)
            continue
        log.info("Keras graph mapped onto preset %s (max abs diff %.2g)", preset, diff)
        return model
    return None


def _build(preset: str, in_channels: int) -> AisArch:
    from ais_torch import archs

    return archs.build(preset, in_channels=in_channels)


def candidate_presets(
    graph: KerasGraphModule, arch_title: str | None, n_parameters: int | None
) -> Iterator[str]:
    """Presets with the graph's Keras parameter count; the one the title names comes first.

    Lazy, so a file whose title maps cleanly costs one meta-device build.
    """
    from ais_torch.archs.presets import PRESETS, preset_for_title
    from ais_torch.errors import ConfigError

    first: list[str] = []
    if arch_title:
        try:
            first = [preset_for_title(arch_title, n_parameters)]
        except ConfigError:
            first = []
    in_channels = graph.in_channels[0] or 1
    for preset in [*first, *(p for p in PRESETS if p not in first)]:
        if _meta_count(preset, in_channels) == graph.n_parameters:
            yield preset


def _meta_count(preset: str, in_channels: int) -> int:
    """Keras parameter count of a preset, built on the meta device (no memory, no init cost)."""
    try:
        with torch.device("meta"):
            return int(_build(preset, in_channels).n_parameters)
    except (AisError, TypeError, ValueError):
        return -1


def map_weights(graph: KerasGraphModule, model: nn.Module) -> float:
    """Copy ``graph``'s weights into ``model`` in topological order; return the output difference.

    Raises :class:`ArchMismatch` (leaving ``model`` half-filled) if topology or outputs differ.
    """
    if graph.n_spatial != int(getattr(model, "n_spatial_dims", 2)):
        raise ArchMismatch(f"the file's network is {graph.n_spatial}D, ours is not")
    multiple = math.lcm(int(getattr(model, "min_size_multiple", 1)), graph.min_size_multiple)
    # a 3D graph is traced and compared in our slab layout; its kernels are permuted to it
    view: nn.Module = _DepthFirstGraph(graph) if graph.n_spatial == 3 else graph
    z = int(getattr(model, "z_multiple", 1))
    small = _example(graph, multiple, 8, z)
    ours = weighted_modules(model, small)
    theirs = weighted_modules(view, small)
    if len(ours) != len(theirs):
        raise ArchMismatch(f"{len(theirs)} weighted layers in the file, {len(ours)} in ours")
    for src, dst in zip(theirs, ours, strict=True):
        _check_pair(src, dst)
    with torch.no_grad():
        for src, dst in zip(theirs, ours, strict=True):
            for a, b in _tensor_pairs(src, dst):
                b.copy_(a)
    model.eval()
    return _verify(view, model, _example(graph, multiple, 32, 2 * z))


def _example(graph: KerasGraphModule, multiple: int, at_least: int, depth: int = 1) -> torch.Tensor:
    """A random input: ``(1, C, H, W)``, or a ``(1, C, depth, H, W)`` slab for 3D graphs."""
    h = multiple * max(1, -(-at_least // multiple))
    gen = torch.Generator().manual_seed(0)
    slab = (max(1, depth),) if graph.n_spatial == 3 else ()
    return torch.randn(1, graph.in_channels[0] or 1, *slab, h, h + multiple, generator=gen)


def _verify(graph: nn.Module, model: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        ours, theirs = model(x), graph(x)
    if ours.shape != theirs.shape:
        raise ArchMismatch(
            f"output shapes differ: {tuple(theirs.shape)} vs ours {tuple(ours.shape)}"
        )
    diff = float((ours.clamp(0, 1) - theirs.clamp(0, 1)).abs().max())
    if not diff <= MATCH_TOLERANCE:
        raise ArchMismatch(f"outputs differ by up to {diff:.3g} on a random input")
    return diff


def _kind(m: nn.Module) -> str:
    if isinstance(m, KConvTranspose | nn.modules.conv._ConvTransposeNd):
        return "transposed conv"
    if isinstance(m, KConv | nn.modules.conv._ConvNd):
        return "conv"
    if isinstance(m, KBatchNorm | nn.modules.batchnorm._BatchNorm):
        return "batch norm"
    if isinstance(m, KDense | nn.Linear):
        return "dense"
    return type(m).__name__


def _depth_first_kernel(src: nn.Module, name: str, a: torch.Tensor) -> torch.Tensor:
    """A 3D Keras kernel ``(o, i, kh, kw, kd)`` in our slab order ``(o, i, kd, kh, kw)``."""
    if name == "weight" and isinstance(src, KConv | KConvTranspose) and src.rank == 3:
        return a.permute(0, 1, 4, 2, 3)
    return a


def _depth_first_geometry(src: KConv | KConvTranspose, values: tuple[int, ...]) -> tuple[int, ...]:
    return (values[2], values[0], values[1]) if src.rank == 3 else tuple(values)


def _tensor_pairs(src: nn.Module, dst: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    names = ["weight", "bias"]
    if _kind(src) == "batch norm":
        names += ["running_mean", "running_var"]
    pairs = []
    for n in names:
        a, b = getattr(src, n, None), getattr(dst, n, None)
        if a is not None:
            a = _depth_first_kernel(src, n, a)
        if (a is None) != (b is None):
            raise ArchMismatch(f"'{n}' present in only one of {src.keras_name} and ours")
        if a is not None and b is not None:
            if a.shape != b.shape:
                raise ArchMismatch(
                    f"{src.keras_name}: {n} {tuple(a.shape)} vs ours {tuple(b.shape)}"
                )
            pairs.append((a, b))
    return pairs


def _check_pair(src: nn.Module, dst: nn.Module) -> None:
    if _kind(src) != _kind(dst):
        raise ArchMismatch(f"{src.keras_name} is a {_kind(src)}, ours a {_kind(dst)}")
    _tensor_pairs(src, dst)
    if isinstance(src, KConv | KConvTranspose):
        stride, dilation = (_depth_first_geometry(src, v) for v in (src.stride, src.dilation))
        if stride != tuple(dst.stride) or dilation != tuple(dst.dilation):
            raise ArchMismatch(f"{src.keras_name}: strides or dilation differ")
    if isinstance(src, KBatchNorm) and not math.isclose(src.eps, dst.eps, rel_tol=1e-6):
        raise ArchMismatch(f"{src.keras_name}: BatchNorm epsilon {src.eps} vs ours {dst.eps}")


# -- data-flow tracing ----------------------------------------------------------------------------
class _DataFlow(TorchFunctionMode):
    """Records, for each torch call, the modules owning its parameters and its producer calls."""

    def __init__(self, owners: dict[int, nn.Module]) -> None:
        super().__init__()
        self.owners = owners
        self.nodes: list[tuple[list[nn.Module], list[int]]] = []
        self.producer: dict[int, int] = {}
        self._alive: list[torch.Tensor] = []  # keeps ids unique while tracing

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        owners, inputs = [], []
        for t in _tensors((args, kwargs)):
            owner = self.owners.get(id(t))
            if owner is not None:
                owners.append(owner)
            elif id(t) in self.producer:
                inputs.append(self.producer[id(t)])
        results = list(_tensors(out))
        if results and (owners or inputs):
            self.nodes.append((owners, inputs))
            for t in results:
                self.producer[id(t)] = len(self.nodes) - 1
                self._alive.append(t)
        return out


def _tensors(obj: Any) -> Iterable[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, list | tuple):
        for item in obj:
            yield from _tensors(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _tensors(item)


def weighted_modules(module: nn.Module, x: torch.Tensor) -> list[nn.Module]:
    """Modules owning parameters, in depth-first post-order of the data flow from the output."""
    owners: dict[int, nn.Module] = {}
    for m in module.modules():
        for t in [*m._parameters.values(), *m._buffers.values()]:
            if t is not None:
                owners[id(t)] = m
    recorder = _DataFlow(owners)
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), recorder:
            out = module(x)
    except AisInputError as err:
        raise ArchMismatch(str(err)) from None
    finally:
        module.train(was_training)
    root = recorder.producer.get(id(out if isinstance(out, torch.Tensor) else out[0]))
    return [] if root is None else _post_order(recorder.nodes, root)


def _post_order(nodes: list[tuple[list[nn.Module], list[int]]], root: int) -> list[nn.Module]:
    emitted: list[nn.Module] = []
    seen_nodes: set[int] = set()
    seen_modules: set[int] = set()
    stack: list[tuple[int, bool]] = [(root, False)]
    while stack:
        index, expanded = stack.pop()
        if expanded:
            for m in nodes[index][0]:
                if id(m) not in seen_modules:
                    seen_modules.add(id(m))
                    emitted.append(m)
            continue
        if index in seen_nodes:
            continue
        seen_nodes.add(index)
        stack.append((index, True))
        stack.extend((child, False) for child in reversed(nodes[index][1]))
    return emitted
