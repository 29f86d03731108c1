"""Keras ``model_config`` graphs rebuilt as PyTorch modules, without TensorFlow.

A Keras ``.h5`` model stores its architecture as JSON (``model_config``): a list of layers,
each with a class name, a config and the tensors it was called on (``inbound_nodes``). This
module turns that description into :class:`KerasGraphModule`, an ``nn.Module`` that runs the
layers in topological order on torch-layout tensors (``(B, C, *spatial)``; Keras' spatial axes
keep their order, only the channel axis moves to position 1).

Why only a fixed list of layers: a model file is downloaded from the internet, so nothing in it
may run code. Every layer class is looked up in :data:`LAYER_BUILDERS`; ``Lambda`` (marshalled
Python bytecode), ``TFOpLambda`` and anything else unknown is refused before any weight is
read. Names are only used as keys (Keras auto-names differ between files): the graph is walked
from ``inbound_nodes``.

Keras semantics reproduced exactly: TensorFlow ``"same"`` padding (asymmetric for even kernels
and strided inputs), transposed-convolution output sizes and cropping, max-pooling that pads
with -inf, average pooling that ignores padding, BatchNormalization with the file's epsilon and
momentum, activations fused into conv layers.
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ais_torch.errors import AisInputError, ModelFormatError

TensorRef = tuple[str, int, int]
"""(layer name, node index, tensor index): one Keras tensor."""


class KerasFormatError(ModelFormatError):
    """A problem inside a Keras model description; the caller prefixes the file name."""


# -- the description ----------------------------------------------------------------------------
@dataclass
class KerasLayer:
    """One layer of ``model_config``: class, config and the tensors of each call (node)."""

    name: str
    class_name: str
    config: dict[str, Any]
    nodes: list[list[TensorRef]] = field(default_factory=list)


@dataclass
class KerasGraphSpec:
    """The parsed ``model_config``: layers in file order, graph inputs and outputs."""

    name: str
    layers: list[KerasLayer]
    inputs: list[TensorRef]
    outputs: list[TensorRef]
    keras_version: str = ""

    def layer(self, name: str) -> KerasLayer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KerasFormatError(f"the model refers to a layer '{name}' that it does not define")


def parse_model_config(text: str | bytes, keras_version: str = "") -> KerasGraphSpec:
    """Parse the ``model_config`` JSON of a Keras 2 (or Keras 3 legacy-h5) model."""
    try:
        raw = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise KerasFormatError(f"model_config is not valid JSON ({err})") from None
    if not isinstance(raw, dict) or "class_name" not in raw:
        raise KerasFormatError("model_config has no 'class_name'; not a Keras model")
    kind = raw["class_name"]
    config = raw.get("config")
    if kind in ("Model", "Functional"):
        return _parse_functional(config, keras_version)
    if kind == "Sequential":
        return _parse_sequential(config, keras_version)
    raise KerasFormatError(
        f"the saved model is a {kind!r}, not a Keras Model/Functional/Sequential; refused"
    )


def _parse_functional(config: Any, keras_version: str) -> KerasGraphSpec:
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise KerasFormatError("model_config of the functional model has no 'layers' list")
    layers = [_parse_layer(item) for item in config["layers"]]
    _check_unique_names(layers)
    inputs = _parse_endpoints(config.get("input_layers"), "input_layers")
    outputs = _parse_endpoints(config.get("output_layers"), "output_layers")
    return KerasGraphSpec(str(config.get("name", "model")), layers, inputs, outputs, keras_version)


def _parse_sequential(config: Any, keras_version: str) -> KerasGraphSpec:
    """Sequential: a chain; Keras 2.1 stores a bare list, later versions ``{"layers": [...]}``."""
    items = config.get("layers") if isinstance(config, dict) else config
    if not isinstance(items, list) or not items:
        raise KerasFormatError("model_config of the Sequential model has no layers")
    name = str(config.get("name", "sequential")) if isinstance(config, dict) else "sequential"
    layers = [_parse_layer(item, chained=True) for item in items]
    if layers[0].class_name != "InputLayer":
        shape = layers[0].config.get("batch_input_shape") or layers[0].config.get("batch_shape")
        if shape is None:
            raise KerasFormatError("the Sequential model does not declare its input shape")
        cfg = {"batch_input_shape": shape, "name": "sequential_input"}
        layers.insert(0, KerasLayer("sequential_input", "InputLayer", cfg))
    _check_unique_names(layers)
    for previous, layer in itertools.pairwise(layers):
        layer.nodes = [[(previous.name, 0, 0)]]
    inputs = [(layers[0].name, 0, 0)]
    outputs = [(layers[-1].name, 0, 0)]
    return KerasGraphSpec(name, layers, inputs, outputs, keras_version)


def _parse_layer(item: Any, chained: bool = False) -> KerasLayer:
    if not isinstance(item, dict) or "class_name" not in item:
        raise KerasFormatError("a layer entry of model_config has no 'class_name'")
    config = item.get("config") or {}
    if not isinstance(config, dict):
        raise KerasFormatError(f"layer {item.get('name')!r} has a config that is not an object")
    name = item.get("name") or config.get("name")
    if not isinstance(name, str) or not name:
        raise KerasFormatError(f"a {item['class_name']} layer has no name")
    nodes = [] if chained else _parse_nodes(name, item.get("inbound_nodes") or [])
    return KerasLayer(name, str(item["class_name"]), config, nodes)


def _parse_nodes(name: str, raw: Any) -> list[list[TensorRef]]:
    """Keras 2 nodes are lists of ``[layer, node, tensor, kwargs]``; Keras 3 nodes are dicts."""
    if not isinstance(raw, list):
        raise KerasFormatError(f"layer '{name}' has malformed inbound_nodes")
    nodes = []
    for node in raw:
        if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
            refs = list(_keras3_history(node.get("args", [])))
        elif isinstance(node, list):
            refs = [_as_ref(name, entry) for entry in node]
        else:
            raise KerasFormatError(f"layer '{name}' has malformed inbound_nodes")
        nodes.append(refs)
    return nodes


def _keras3_history(obj: Any) -> Sequence[TensorRef]:
    if isinstance(obj, dict):
        config = obj.get("config")
        history = config.get("keras_history") if isinstance(config, dict) else None
        if obj.get("class_name") == "__keras_tensor__" and history is not None:
            return [_as_ref("?", history)]
        return [r for value in obj.values() for r in _keras3_history(value)]
    if isinstance(obj, list):
        return [r for value in obj for r in _keras3_history(value)]
    return []


def _as_ref(name: str, entry: Any) -> TensorRef:
    ok = isinstance(entry, list | tuple) and len(entry) >= 3 and isinstance(entry[0], str)
    if not ok or not all(isinstance(v, int) for v in entry[1:3]):
        raise KerasFormatError(f"layer '{name}' has a malformed input reference {entry!r}")
    return (entry[0], int(entry[1]), int(entry[2]))


def _parse_endpoints(raw: Any, what: str) -> list[TensorRef]:
    if not isinstance(raw, list) or not raw:
        raise KerasFormatError(f"model_config has no '{what}'")
    if isinstance(raw[0], str):  # a single endpoint stored flat
        raw = [raw]
    return [_as_ref(what, entry) for entry in raw]


def _check_unique_names(layers: list[KerasLayer]) -> None:
    seen: set[str] = set()
    for layer in layers:
        if layer.name in seen:
            raise KerasFormatError(f"two layers are named '{layer.name}'")
        seen.add(layer.name)


# -- refusing what may not run -----------------------------------------------------------------
CODE_LAYERS = ("Lambda", "TFOpLambda", "SlicingOpLambda")
NESTED_MODELS = ("Model", "Functional", "Sequential")


def check_layers(spec: KerasGraphSpec) -> None:
    """Refuse (before any weight is read) every layer that is code or that we do not know."""
    for layer in spec.layers:
        cls = layer.class_name
        if cls in CODE_LAYERS:
            raise KerasFormatError(
                f"layer '{layer.name}' ({cls}) holds arbitrary Python code; refused — "
                "ais_torch never executes or unmarshals code from a model file"
            )
        if cls in NESTED_MODELS:
            raise KerasFormatError(
                f"layer '{layer.name}' ({cls}) is a nested model; refused (not supported)"
            )
        if cls not in LAYER_BUILDERS:
            raise KerasFormatError(
                f"layer '{layer.name}' has class '{cls}', which ais_torch's Keras importer does "
                "not support; refused (see ais_torch.formats.keras.graph.LAYER_BUILDERS)"
            )
        fmt = layer.config.get("data_format", "channels_last")
        if fmt not in (None, "channels_last"):
            raise KerasFormatError(
                f"layer '{layer.name}' ({cls}) uses data_format={fmt!r}; only channels_last "
                "models are supported"
            )


# -- layers as torch modules --------------------------------------------------------------------
def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "linear": _identity,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "softmax": lambda x: torch.softmax(x, dim=1),  # Keras: the last (channel) axis
    "elu": F.elu,
    "selu": F.selu,
    "softplus": F.softplus,
    "softsign": F.softsign,
    "swish": F.silu,
    "silu": F.silu,
    "gelu": F.gelu,  # Keras default approximate=False (erf)
    "exponential": torch.exp,
    "relu6": F.relu6,
}


def activation_fn(name: Any, layer: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The torch function for a built-in Keras activation; anything else is refused."""
    key = "linear" if name is None else name
    if not isinstance(key, str) or key not in ACTIVATIONS:
        raise KerasFormatError(
            f"layer '{layer}' uses activation {name!r}, which is not a supported built-in "
            f"Keras activation ({', '.join(ACTIVATIONS)}); refused"
        )
    return ACTIVATIONS[key]


def tf_same_pad(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """(before, after) zeros that TensorFlow's ``"same"`` adds on one axis; odd pixel after."""
    k = (kernel - 1) * dilation + 1
    total = max((math.ceil(size / stride) - 1) * stride + k - size, 0)
    return total // 2, total - total // 2


def torch_pad(pairs: Sequence[tuple[int, int]]) -> list[int]:
    """Per-axis (before, after) pairs, first spatial axis first, in ``F.pad``'s order."""
    return [v for pair in reversed(pairs) for v in pair]


def _tuple(value: Any, n: int, what: str, layer: str) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * n
    if (
        isinstance(value, list | tuple)
        and len(value) == n
        and all(isinstance(v, int) for v in value)
    ):
        return tuple(value)
    raise KerasFormatError(f"layer '{layer}': {what}={value!r} is not {n} integers")


def _pairs(value: Any, n: int, what: str, layer: str) -> list[tuple[int, int]]:
    """ZeroPadding/Cropping amounts: an int, n ints (symmetric) or n (before, after) pairs."""
    if isinstance(value, int):
        return [(value, value)] * n
    if isinstance(value, list | tuple) and len(value) == n:
        out = []
        for v in value:
            if isinstance(v, int):
                out.append((v, v))
            elif isinstance(v, list | tuple) and len(v) == 2 and all(isinstance(i, int) for i in v):
                out.append((int(v[0]), int(v[1])))
            else:
                raise KerasFormatError(f"layer '{layer}': {what}={value!r} is malformed")
        return out
    raise KerasFormatError(f"layer '{layer}': {what}={value!r} is malformed")


def torch_axis(axis: int, ndim: int) -> int:
    """A Keras (channels-last) axis of an ``ndim`` tensor as the torch-layout axis."""
    a = axis % ndim
    if a == 0:
        return 0
    return 1 if a == ndim - 1 else a + 1


class KerasOp(nn.Module):
    """One Keras layer call. Subclasses set ``weight_slots`` and implement ``forward``.

    ``out_channels`` and ``scale`` run once at build time on channel counts and down-sampling
    factors, so a file whose weights do not fit its own graph fails there with a clear message.
    """

    weight_slots: tuple[str, ...] = ()
    has_activation = False

    def __init__(self, layer: KerasLayer, ndim: int) -> None:
        super().__init__()
        self.keras_name = layer.name
        self.keras_class = layer.class_name
        self.ndim = ndim

    def load_keras(self, weights: dict[str, np.ndarray]) -> None:
        """Take this layer's Keras arrays (by short name: ``kernel``, ``gamma``, ...)."""
        if weights:
            raise KerasFormatError(
                f"layer '{self.keras_name}' ({self.keras_class}) should have no weights but the "
                f"file stores {sorted(weights)}"
            )

    def out_channels(self, channels: list[int | None]) -> int | None:
        return channels[0]

    def scale(self, scales: list[float]) -> float:
        """Cumulative down-sampling factor after this layer (for the valid input multiple)."""
        return scales[0]

    def _fail(self, message: str) -> KerasFormatError:
        return KerasFormatError(f"layer '{self.keras_name}' ({self.keras_class}): {message}")


def _spatial(layer: KerasLayer, ndim: int) -> int:
    """Number of spatial axes a 1D/2D/3D layer class expects; checks the tensor rank."""
    found = re.search(r"([123])D(Transpose)?$", layer.class_name)
    rank = int(found.group(1)) if found else ndim - 2
    if ndim != rank + 2:
        raise KerasFormatError(
            f"layer '{layer.name}' ({layer.class_name}) receives {ndim}-D tensors, "
            f"expected {rank + 2}-D"
        )
    return rank


def _read_conv_geometry(op: KerasOp, layer: KerasLayer, ndim: int) -> int:
    """Set ``rank``, ``filters``, ``kernel``, ``stride``, ``dilation`` of a (transposed) conv."""
    cfg, n = layer.config, _spatial(layer, ndim)
    op.rank = n
    op.filters = int(cfg.get("filters", 0))
    op.kernel = _tuple(cfg.get("kernel_size"), n, "kernel_size", layer.name)
    op.stride = _tuple(cfg.get("strides", 1), n, "strides", layer.name)
    op.dilation = _tuple(cfg.get("dilation_rate", 1), n, "dilation_rate", layer.name)
    op.use_bias = bool(cfg.get("use_bias", True))
    op.weight_slots = ("kernel", "bias") if op.use_bias else ("kernel",)
    op.weight = nn.Parameter(torch.empty(0))
    op.bias = nn.Parameter(torch.empty(0)) if op.use_bias else None
    return n


def _load_kernel(op: KerasOp, weights: dict[str, np.ndarray], filter_axis: int) -> None:
    """Check a Keras kernel against the config and store it (and the bias) in torch layout.

    Keras puts the spatial axes first; torch wants ``(out, in, *k)`` for convolutions and
    ``(in, out, *k)`` for transposed ones, which is the same axis move since Keras stores the
    transposed kernel as ``(*k, out, in)``. ``filter_axis`` says where ``filters`` sits.
    """
    kernel = weights["kernel"]
    if kernel.ndim != op.rank + 2 or tuple(kernel.shape[: op.rank]) != op.kernel:
        raise op._fail(f"kernel of shape {kernel.shape} does not fit {op.kernel}")
    if kernel.shape[filter_axis] != op.filters:
        raise op._fail(f"kernel has {kernel.shape[filter_axis]} filters, config {op.filters}")
    from ais_torch.formats.keras.weights import kernel_to_torch  # one table for import and export

    op.weight = nn.Parameter(torch.from_numpy(kernel_to_torch(kernel)))
    if op.use_bias:
        op.bias = nn.Parameter(torch.from_numpy(_vector(weights["bias"], op.filters, op)))


class KConv(KerasOp):
    """Conv1D/2D/3D: kernel ``(*k, cin/groups, cout)`` becomes torch ``(cout, cin/groups, *k)``."""

    has_activation = True

    def __init__(self, layer: KerasLayer, ndim: int) -> None:
        super().__init__(layer, ndim)
        _read_conv_geometry(self, layer, ndim)
        cfg = layer.config
        self.groups = int(cfg.get("groups", 1) or 1)
        self.padding = str(cfg.get("padding", "valid")).lower()
        if self.padding not in ("same", "valid"):
            raise self._fail(f"padding={self.padding!r} is not supported")
        self.activation_name = cfg.get("activation") or "linear"
        self.act = activation_fn(cfg.get("activation"), layer.name)
        self._native_pad: tuple[int, ...] | None = None

    def load_keras(self, weights: dict[str, np.ndarray]) -> None:
        _load_kernel(self, weights, filter_axis=-1)
        symmetric = all(s == 1 for s in self.stride) and all(
            (k - 1) * d % 2 == 0 for k, d in zip(self.kernel, self.dilation, strict=True)
        )
        if self.padding == "same" and symmetric:  # TF pads equally: let torch do it in-kernel
            self._native_pad = tuple(
                (k - 1) * d // 2 for k, d in zip(self.kernel, self.dilation, strict=True)
            )

    def out_channels(self, channels: list[int | None]) -> int | None:
        cin = self.weight.shape[1] * self.groups
        if channels[0] is not None and channels[0] != cin:
            raise self._fail(f"kernel expects {cin} input channels but receives {channels[0]}")
        return self.filters

    def scale(self, scales: list[float]) -> float:
        return scales[0] * max(self.stride)

    def forward(self, x: torch.Tensor, activate: bool = True) -> torch.Tensor:
        conv = (F.conv1d, F.conv2d, F.conv3d)[self.rank - 1]
        padding: tuple[int, ...] | int = 0
        if self._native_pad is not None:
            padding = self._native_pad
        elif self.padding == "same":
            sizes = x.shape[2:]
            pairs = [
                tf_same_pad(n, k, s, d)
                for n, k, s, d in zip(sizes, self.kernel, self.stride, self.dilation, strict=True)
            ]
            x = F.pad(x, torch_pad(pairs))
        y = conv(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)
        return self.act(y) if activate else y


class KConvTranspose(KerasOp):
    """Conv2DTranspose/Conv3DTranspose with Keras' output size and TF's "same" cropping.

    Kernel ``(*k, cout, cin)`` becomes torch ``(cin, cout, *k)``. The full transposed
    convolution is computed without padding, then cropped (or zero-extended) to the Keras output
    length starting at TF's "before" padding, and only then the bias is added — so positions
    outside the full result hold the bias, exactly as in TensorFlow.
    """

    has_activation = True

    def __init__(self, layer: KerasLayer, ndim: int) -> None:
        super().__init__(layer, ndim)
        cfg, n = layer.config, _read_conv_geometry(self, layer, ndim)
        out_pad = cfg.get("output_padding")
        self.output_padding = (
            None if out_pad is None else _tuple(out_pad, n, "output_padding", layer.name)
        )
        if int(cfg.get("groups", 1) or 1) != 1:
            raise self._fail("grouped transposed convolutions are not supported")
        self.padding = str(cfg.get("padding", "valid")).lower()
        if self.padding not in ("same", "valid"):
            raise self._fail(f"padding={self.padding!r} is not supported")
        self.activation_name = cfg.get("activation") or "linear"
        self.act = activation_fn(cfg.get("activation"), layer.name)

    def load_keras(self, weights: dict[str, np.ndarray]) -> None:
        _load_kernel(self, weights, filter_axis=-2)

    def out_channels(self, channels: list[int | None]) -> int | None:
        cin = self.weight.shape[0]
        if channels[0] is not None and channels[0] != cin:
            raise self._fail(f"kernel expects {cin} input channels but receives {channels[0]}")
        return self.filters

    def scale(self, scales: list[float]) -> float:
        return scales[0] / max(self.stride)

    def _length(self, n: int, axis: int) -> int:
        """Keras ``deconv_output_length`` for one axis."""
        k = (self.kernel[axis] - 1) * self.dilation[axis] + 1
        s = self.stride[axis]
        if self.output_padding is None:
            return n * s if self.padding == "same" else n * s + max(k - s, 0)
        p = k // 2 if self.padding == "same" else 0
        return (n - 1) * s + k - 2 * p + self.output_padding[axis]

    def forward(self, x: torch.Tensor, activate: bool = True) -> torch.Tensor:
        deconv = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[self.rank - 1]
        y = deconv(x, self.weight, None, self.stride, 0, 0, 1, self.dilation)
        pairs = []
        for axis, n in enumerate(x.shape[2:]):
            out = self._length(n, axis)
            before = 0
            if self.padding == "same":
                before = tf_same_pad(
                    out, self.kernel[axis], self.stride[axis], self.dilation[axis]
                )[0]
            full = y.shape[2 + axis]
            pairs.append((-before, out + before - full))
        if any(a or b for a, b in pairs):
            y = F.pad(y, torch_pad(pairs))
        if self.bias is not None:
            y = y + self.bias.view(1, -1, *([1] * self.rank))
        return self.act(y) if activate else y


class KDense(KerasOp):
    """Dense on the channel axis (kernel ``(cin, units)``), as Keras applies it to the last axis."""

    has_activation = True

    def __init__(self, layer: KerasLayer, ndim: int) -> None:
        super().__init__(layer, ndim)
        self.units = int(layer.config.get("units", 0))
        self.activation_name = layer.config.get("activation") or "linear"
        self.act = activation_fn(layer.config.get("activation"), layer.name)
        self.use_bias = bool(layer.config.get("use_bias", True))
        self.weight_slots = ("kernel", "bias") if self.use_bias else ("kernel",)
        self.weight = nn.Parameter(torch.empty(0))
        self.bias = nn.Parameter(torch.empty(0)) if self.use_bias else None

    def load_keras(self, weights: dict[str, np.ndarray]) -> None:
        kernel = weights["kernel"]
        if kernel.ndim != 2 or kernel.shape[1] != self.units:
            raise self._fail(f"kernel of shape {kernel.shape} does not fit {self.units} units")
        self.weight = nn.Parameter(torch.from_numpy(np.ascontiguousarray(kernel.T)))
        if self.use_bias:
            self.bias = nn.Parameter(torch.from_numpy(_vector(weights["bias"], self.units, self)))

    def out_channels(self, channels: list[int | None]) -> int | None:
        if channels[0] is not None and channels[0] != self.weight.shape[1]:
            raise self._fail(f"expects {self.weight.shape[1]} channels, receives {channels[0]}")
        return self.units

    def forward(self, x: torch.Tensor, activate: bool = True) -> torch.Tensor:
        y = F.linear(x.movedim(1, -1), self.weight, self.bias).movedim(-1, 1)
        return self.act(y) if activate else y


class KBatchNorm(KerasOp):
    """BatchNormalization on the channel axis with the file's epsilon and momentum."""

    def __init__(self, layer: KerasLayer, ndim: int) -> None:
        super().__init__(layer, ndim)
        cfg = layer.config
        axis = cfg.get("axis", -1)
        axes = axis if isinstance(axis, list) else [axis]
        if len(axes) != 1 or not isinstance(axes[0], int) or torch_axis(axes[0], ndim) != 1:
            raise self._fail(f"normalises axis {axis!r}; only the channel axis is supported")
        self.eps = float(cfg.get("epsilon", 1e-3))
        self.momentum = 1.0 - float(cfg.get("momentum", 0.99))  # torch convention
        self.center = bool(cfg.get("center", True))
        self.scale_ = bool(cfg.get("scale", True))
        slots = (("gamma",) if self.scale_ else ()) + (("beta",) if self.center else ())
        self.weight_slots = (*slots, "moving_mean", "moving_variance")
        self.weight = nn.Parameter(torch.empty(0))
        self.bias = nn.Parameter(torch.empty(0))
        self.register_buffer("running_mean", torch.empty(0))
        self.register_buffer("running_var", torch.empty(0))

    def load_keras(self, weights: dict[str, np.ndarray]) -> None:
        n = int(np.asarray(weights["moving_mean"]).size)
        self.running_mean = torch.from_numpy(_vector(weights["moving_mean"], n, self))
        self.running_var = torch.from_numpy(_vector(weights["moving_variance"], n, self))
        gamma = weights.get("gamma", np.ones(n, np.float32))
        beta = weights.get("beta", np.zeros(n, np.float32))
        self.weight = nn.Parameter(torch.from_numpy(_vector(gamma, n, self)))
        self.bias = nn.Parameter(torch.from_numpy(_vector(beta, n, self)))

    def out_channels(self, channels: list[int | None]) -> int | None:
        n = self.running_mean.numel()
        if channels[0] is not None and channels[0] != n:
            raise self._fail(f"has {n} channels but receives {channels[0]}")
        return channels[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(
            x,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            self.training,
            self.momentum,
            self.eps,
        )


def _vector(array: np.ndarray, n: int, op: KerasOp) -> np.ndarray:
    array = np.asarray(array, dtype=np.float32)
    if array.shape != (n,):
        raise op._fail(f"a weight vector has shape {array.shape}, expected ({n},)")
    return np.ascontiguousarray(array)


class KPool(KerasOp):
    """MaxPooling/AveragePooling 1D-3D; "same" pads with -inf (max) or is excluded (average)."""

    def __init__(self, layer: KerasLayer, ndim: int) -> None:
        super().__init__(layer, ndim)
        cfg, n = layer.config, _spatial(layer, ndim)
        self.rank = n
        self.is_max = layer.class_name.startswith("Max")
        self.pool = _tuple(cfg.get("pool_size", 2), n, "pool_size", layer.name)
        strides = cfg.get("strides")
        self.stride = self.pool if strides is None else _tuple(strides, n, "strides", layer.name)
        self.padding = str(cfg.get("padding", "valid")).lower()
        if self.padding not in ("same", "valid"):
            raise self._fail(f"padding={self.padding!r} is not supported")

    def scale(self, scales: list[float]) -> float:
        return scales[0] * max(self.stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fn = (F.max_pool1d, F.max_pool2d, F.max_pool3d) if self.is_max else None
        if self.padding == "valid":
            if fn is not None:
                return fn[self.rank - 1](x, self.pool, self.stride)
            avg = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[self.rank - 1]
            return avg(x, self.pool, self.stride)
        pairs = [
            tf_same_pad(n, k, s)
            for n, k, s in zip(x.shape[2:], self.pool, self.stride, strict=True)
        ]
        if fn is not None:
            padded = F.pad(x, torch_pad(pairs), value=-math.inf)
            return fn[self.rank - 1](padded, self.pool, self.stride)
        avg = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[self.rank - 1]
        total = avg(F.pad(x, torch_pad(pairs)), self.pool, self.stride)
        ones = torch.ones_like(x[:1, :1])
        count = avg(F.pad(ones, torch_pad(pairs)), self.pool, self.stride)
        return total / count


class KUpSampling(KerasOp):
    """UpSampling1D/2D/3D: nearest (exact repeats) or, in 2D, bilinear (half-pixel centres)."""

    def __init__(self, layer: KerasLayer, ndim: int) -> None:
        super().__init__(layer, ndim)
        n = _spatial(layer, ndim)
        key = "size" if "size" in layer.config else "length"
        self.size = _tuple(layer.config.get(key, 2), n, key, layer.name)
        self.mode = str(layer.config.get("interpolation", "nearest"))
        if self.mode not in ("nearest", "bilinear") or (self.mode == "bilinear" and n != 2):
            raise self._fail(f"interpolation={self.mode!r} is not supported")

    def scale(self, scales: list[float]) -> float:
        return scales[0] / max(self.size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "bilinear":
            return F.interpolate(x, scale_factor=self.size, mode="bilinear", align_corners=False)
        for axis, s in enumerate(self.size):
            if s != 1:
                x = x.repeat_interleave(s, dim=2 + axis)
        return x


class KZeroPadding(KerasOp):
    """ZeroPadding1D/2D/3D."""

    def __init__(self, layer: KerasLayer, ndim: int) -> None:
        super().__init__(layer, ndim)
        n = _spatial(layer, ndim)
        self.pad = torch_pad(_pairs(layer.config.get("padding", 1), n, "padding", layer.name))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.pad)


class KCropping(KerasOp):
    """Cropping1D/2D/3D."""

    def __init__(self, layer: KerasLayer, ndim: int) -> None:
        super().__init__(layer, ndim)
        n = _spatial(layer, ndim)
        self.crop = _pairs(layer.config.get("cropping", 0), n, "cropping", layer.name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        index = [slice(None), slice(None)]
        for (a, b), size in zip(self.crop, x.shape[2:], strict=True):
            index.append(slice(a, size - b))
        return x[tuple(index)]


class KConcatenate(KerasOp):
    """Concatenate along a Keras axis (default -1 = channels)."""

    def __init__(self, layer: KerasLayer, ndim: int) -> None:
        super().__init__(layer, ndim)
        self.axis = torch_axis(int(layer.config.get("axis", -1)), ndim)

    def out_channels(self, channels: list[int | None]) -> int | None:
        if self.axis != 1:
            return channels[0]
        return None if None in channels else sum(c for c in channels if c is not None)

    def scale(self, scales: list[float]) -> float:
        return max(scales)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, dim=self.axis)


class KMerge(KerasOp):
    """Add, Subtract, Multiply, Average, Maximum, Minimum (applied left to right)."""

    def __init__(self, layer: KerasLayer, ndim: int) -> None:
        super().__init__(layer, ndim)
        self.kind = layer.class_name

    def out_channels(self, channels: list[int | None]) -> int | None:
        known = {c for c in channels if c is not None}
        if len(known) > 1:
            raise self._fail(f"merges tensors with different channel counts {sorted(known)}")
        return known.pop() if known else None

    def scale(self, scales: list[float]) -> float:
        return max(scales)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = xs[0]
        if self.kind == "Subtract":
            return out - xs[1]
        for x in xs[1:]:
            if self.kind in ("Add", "Average"):
                out = out + x
            elif self.kind == "Multiply":
                out = out * x
            elif self.kind == "Maximum":
                out = torch.maximum(out, x)
            else:
                out = torch.minimum(out, x)
        return out / len(xs) if self.kind == "Average" else out


class KActivation(KerasOp):
    """Activation, ReLU, LeakyReLU, ELU, Softmax layers."""

    def __init__(self, layer: KerasLayer, ndim: int) -> None:
        super().__init__(layer, ndim)
        cfg, cls = layer.config, layer.class_name
        self.activation_name = str(cfg.get("activation")) if cls == "Activation" else cls.lower()
        self.fn: Callable[[torch.Tensor], torch.Tensor]
        if cls == "Activation":
            self.fn = activation_fn(cfg.get("activation"), layer.name)
        elif cls == "ReLU":
            self.fn = _keras_relu(cfg)
        elif cls == "LeakyReLU":
            slope = float(cfg.get("alpha", cfg.get("negative_slope", 0.3)))
            self.fn = lambda x: F.leaky_relu(x, slope)
        elif cls == "ELU":
            alpha = float(cfg.get("alpha", 1.0))
            self.fn = lambda x: F.elu(x, alpha)
        else:  # Softmax
            axis = torch_axis(int(cfg.get("axis", -1)), ndim)
            self.fn = lambda x: torch.softmax(x, dim=axis)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def _keras_relu(cfg: dict[str, Any]) -> Callable[[torch.Tensor], torch.Tensor]:
    """Keras ``ReLU(max_value, negative_slope, threshold)``."""
    max_value = cfg.get("max_value")
    slope = float(cfg.get("negative_slope", 0.0) or 0.0)
    threshold = float(cfg.get("threshold", 0.0) or 0.0)

    def relu(x: torch.Tensor) -> torch.Tensor:
        if slope == 0.0 and threshold == 0.0:
            y = torch.relu(x)
        else:
            y = torch.where(x >= threshold, x, slope * (x - threshold))
        return y if max_value is None else torch.clamp(y, max=float(max_value))

    return relu


class KIdentity(KerasOp):
    """Dropout and noise layers: identity at inference, as in Keras."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class KInput(KerasOp):
    """InputLayer: records the expected channel count and tensor rank."""

    def __init__(self, layer: KerasLayer, ndim: int) -> None:
        super().__init__(layer, ndim)
        shape = input_shape(layer)
        self.channels = shape[-1] if shape else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def input_shape(layer: KerasLayer) -> list[int | None]:
    """``batch_input_shape`` (Keras 2) or ``batch_shape`` (Keras 3) of an InputLayer."""
    shape = layer.config.get("batch_input_shape") or layer.config.get("batch_shape")
    if not isinstance(shape, list) or len(shape) < 3:
        raise KerasFormatError(
            f"input layer '{layer.name}' has no usable batch_input_shape ({shape!r}); "
            "expected (batch, *spatial, channels)"
        )
    return shape


INFERENCE_IDENTITY = (
    "Dropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
    "GaussianDropout",
    "GaussianNoise",
    "AlphaDropout",
    "ActivityRegularization",
)
LayerBuilder = Callable[[KerasLayer, int], KerasOp]
LAYER_BUILDERS: dict[str, LayerBuilder] = {
    "InputLayer": KInput,
    **{f"Conv{n}D": KConv for n in (1, 2, 3)},
    **{f"Conv{n}DTranspose": KConvTranspose for n in (2, 3)},
    **{f"{kind}Pooling{n}D": KPool for kind in ("Max", "Average") for n in (1, 2, 3)},
    **{f"UpSampling{n}D": KUpSampling for n in (1, 2, 3)},
    **{f"ZeroPadding{n}D": KZeroPadding for n in (1, 2, 3)},
    **{f"Cropping{n}D": KCropping for n in (1, 2, 3)},
    "Dense": KDense,
    "BatchNormalization": KBatchNorm,
    "Concatenate": KConcatenate,
    **dict.fromkeys(("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"), KMerge),
    **dict.fromkeys(("Activation", "ReLU", "LeakyReLU", "ELU", "Softmax"), KActivation),
    **dict.fromkeys(INFERENCE_IDENTITY, KIdentity),
}
"""Every Keras layer class the importer accepts; all others are refused."""


# -- the executable graph -----------------------------------------------------------------------
@dataclass(frozen=True)
class _Call:
    op: int  # index into KerasGraphModule.ops
    node: int
    inputs: tuple[TensorRef, ...]


class KerasGraphModule(nn.Module):
    """A Keras functional graph run on torch-layout tensors, layer by layer in topological order.

    ``forward(*inputs)`` takes one ``(B, C, *spatial)`` tensor per Keras input and returns the
    output (a tuple if the model has several). ``forward(x, logits=True)`` skips the activation
    of the output layer(s) (e.g. a softmax), to compare pre-activation values.
    """

    def __init__(self, spec: KerasGraphSpec, ops: dict[str, KerasOp]) -> None:
        super().__init__()
        self.name = spec.name
        self.keras_version = spec.keras_version
        self.layer_names = list(ops)
        self.ops = nn.ModuleList(ops.values())
        index = {name: i for i, name in enumerate(self.layer_names)}
        self.inputs = list(spec.inputs)
        self.outputs = list(spec.outputs)
        self.plan = [
            _Call(index[layer.name], node, tuple(refs))
            for layer, node, refs in _topological_calls(spec)
        ]
        self.in_channels, self.n_spatial, self.min_size_multiple = self._check_shapes()
        self.eval()

    @property
    def n_parameters(self) -> int:
        """Number of values in the file's weights (Keras ``count_params``, BN statistics too)."""
        return sum(t.numel() for op in self.ops for t in [*op.parameters(), *op.buffers()])

    def op(self, name: str) -> KerasOp:
        return self.ops[self.layer_names.index(name)]

    def _check_shapes(self) -> tuple[list[int | None], int, int]:
        """Propagate channel counts and down-sampling factors once, failing on inconsistencies."""
        channels: dict[tuple[str, int], int | None] = {}
        scales: dict[tuple[str, int], float] = {}
        in_channels: list[int | None] = []
        for name, _, _ in self.inputs:
            op = self.op(name)
            if not isinstance(op, KInput):
                raise KerasFormatError(f"graph input '{name}' is not an InputLayer")
            channels[(name, 0)] = op.channels
            scales[(name, 0)] = 1.0
            in_channels.append(op.channels)
        biggest = 1.0
        for call in self.plan:
            op = self.ops[call.op]
            keys = [(ref[0], ref[1]) for ref in call.inputs]
            key = (self.layer_names[call.op], call.node)
            channels[key] = op.out_channels([channels[k] for k in keys])
            scales[key] = op.scale([scales[k] for k in keys])
            biggest = max(biggest, scales[key])
        n_spatial = self.ops[0].ndim - 2 if self.ops else 2
        return in_channels, n_spatial, round(biggest)

    def forward(self, *xs: torch.Tensor, logits: bool = False) -> Any:
        if len(xs) != len(self.inputs):
            raise AisInputError(f"{self.name} takes {len(self.inputs)} input(s), got {len(xs)}")
        values: dict[tuple[str, int], torch.Tensor] = {}
        for (name, node, _), x, c in zip(self.inputs, xs, self.in_channels, strict=True):
            self._check_input(x, c)
            values[(name, node)] = x
        final = {(name, node) for name, node, _ in self.outputs} if logits else set()
        for call in self.plan:
            op = self.ops[call.op]
            args = [values[(ref[0], ref[1])] for ref in call.inputs]
            key = (self.layer_names[call.op], call.node)
            values[key] = _run_without_activation(op, args) if key in final else op(*args)
        outs = tuple(values[(name, node)] for name, node, _ in self.outputs)
        return outs[0] if len(outs) == 1 else outs

    def _check_input(self, x: torch.Tensor, channels: int | None) -> None:
        expected = self.n_spatial + 2
        if x.ndim != expected or (channels is not None and x.shape[1] != channels):
            c = channels if channels is not None else "C"
            axes = ", ".join(["D", "H", "W"][-self.n_spatial :]) if self.n_spatial <= 3 else "..."
            raise AisInputError(f"{self.name} expects (B, {c}, {axes}) input, got {tuple(x.shape)}")


def _run_without_activation(op: KerasOp, args: list[torch.Tensor]) -> torch.Tensor:
    if op.has_activation:
        return op(*args, activate=False)
    if isinstance(op, KActivation):
        return args[0]
    raise KerasFormatError(
        f"output layer '{op.keras_name}' ({op.keras_class}) has no activation to leave out"
    )


def _topological_calls(spec: KerasGraphSpec) -> list[tuple[KerasLayer, int, list[TensorRef]]]:
    """Every layer call needed for the outputs, inputs before users (file order on ties)."""
    by_name = {layer.name: layer for layer in spec.layers}
    order = {layer.name: i for i, layer in enumerate(spec.layers)}
    for name, _, _ in spec.inputs:
        if name not in by_name or by_name[name].class_name != "InputLayer":
            raise KerasFormatError(f"graph input '{name}' is not an InputLayer of the model")
    sources = {(name, node) for name, node, _ in spec.inputs}
    needed: dict[tuple[str, int], list[TensorRef]] = {}
    stack = [(name, node) for name, node, _ in spec.outputs]
    while stack:
        key = stack.pop()
        if key in needed or key in sources:
            continue
        layer = by_name.get(key[0])
        if layer is None or key[1] >= len(layer.nodes):
            raise KerasFormatError(f"the graph refers to a missing layer call {key}")
        refs = layer.nodes[key[1]]
        for ref in refs:
            if ref[2] != 0:
                raise KerasFormatError(f"layer '{ref[0]}' has one output; tensor {ref[2]} used")
        needed[key] = refs
        stack.extend((ref[0], ref[1]) for ref in refs)
    return _kahn(needed, sources, by_name, order)


def _kahn(
    needed: dict[tuple[str, int], list[TensorRef]],
    sources: set[tuple[str, int]],
    by_name: dict[str, KerasLayer],
    order: dict[str, int],
) -> list[tuple[KerasLayer, int, list[TensorRef]]]:
    """Kahn's algorithm; among ready calls the one listed first in the file runs first."""
    waiting = dict.fromkeys(needed, 0)
    users: dict[tuple[str, int], list[tuple[str, int]]] = {key: [] for key in needed}
    for key, refs in needed.items():
        for ref in refs:
            if (ref[0], ref[1]) not in sources:
                waiting[key] += 1
                users[(ref[0], ref[1])].append(key)
    ready = [(order[k[0]], k[1], k) for k, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    plan = []
    while ready:
        _, _, key = heapq.heappop(ready)
        plan.append((by_name[key[0]], key[1], needed[key]))
        for user in users[key]:
            waiting[user] -= 1
            if waiting[user] == 0:
                heapq.heappush(ready, (order[user[0]], user[1], user))
    if len(plan) != len(needed):
        stuck = ", ".join(k[0] for k, n in waiting.items() if n > 0)
        raise KerasFormatError(f"the layer graph has a cycle ({stuck})")
    return plan


def build_graph(
    spec: KerasGraphSpec, weights: Callable[[KerasOp], dict[str, np.ndarray]]
) -> KerasGraphModule:
    """Build every layer of ``spec`` and fill it from ``weights(op)``; refuses unknown layers."""
    check_layers(spec)
    ndim = len(input_shape(spec.layer(spec.inputs[0][0])))
    ops: dict[str, KerasOp] = {}
    for layer in spec.layers:
        op = LAYER_BUILDERS[layer.class_name](layer, ndim)
        op.load_keras(weights(op))
        ops[layer.name] = op
    return KerasGraphModule(spec, ops)
