"""Our architectures described as Keras 2.15 functional graphs (``model_config`` + weights).

Why per architecture: the original Ais builds each network with a few lines of Keras code, and
a model file is only "the original's own" if it has the same layers, created in the same order
(which fixes Keras' auto-names ``conv2d``, ``conv2d_1``, ...), with the same configs. Each
architecture replays the original's ``create()`` in its own ``keras_graph`` method, next to its
definition (so a plugin architecture can define one too), reading widths, kernels and weights
from its modules; it works for every preset and hyperparameter choice of that class.
:class:`KerasBuilder` turns the calls into Keras layer entries exactly as Keras 2.15 serialises
them (configs, ``inbound_nodes``, and the layer order of ``Functional.layers``).

Weights are converted with the one layout table in :mod:`ais_torch.formats.keras.weights`, the same
one the importer uses.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from ais_torch.errors import ModelFormatError
from ais_torch.formats.keras.weights import KERAS_SLOTS, kernel_to_keras

KERAS_VERSION = "2.15.0"
BACKEND = "tensorflow"
MODEL_NAME = "model"  # what the original's Model(...) is auto-named in a fresh session


class NoKerasTwin(ModelFormatError):
    """The model (or one of its layers) has no Keras equivalent the writer knows."""


@dataclass
class KerasLayerEntry:
    """One layer of the graph: its Keras class, config, inputs (layer names) and weights."""

    name: str
    class_name: str
    config: dict[str, Any]
    inputs: list[str]
    weights: list[tuple[str, np.ndarray]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        nodes = [[[src, 0, 0, {}] for src in self.inputs]] if self.inputs else []
        return {
            "class_name": self.class_name,
            "config": self.config,
            "name": self.name,
            "inbound_nodes": nodes,
        }


@dataclass
class KerasFunctional:
    """A whole graph: layers in ``Functional.layers`` order, one input, one output."""

    layers: list[KerasLayerEntry]
    input_name: str
    output_name: str
    name: str = MODEL_NAME

    def model_config(self) -> dict[str, Any]:
        """The ``model_config`` root attribute, as ``json.dumps`` input."""
        return {
            "class_name": "Functional",
            "config": {
                "name": self.name,
                "trainable": True,
                "layers": [layer.as_json() for layer in self.layers],
                "input_layers": [[self.input_name, 0, 0]],
                "output_layers": [[self.output_name, 0, 0]],
            },
        }

    @property
    def n_parameters(self) -> int:
        """Keras ``count_params``: every stored value, BatchNormalization statistics included."""
        return sum(int(a.size) for layer in self.layers for _, a in layer.weights)


def _snake(class_name: str) -> str:
    """Keras' ``to_snake_case`` (``Conv2DTranspose`` → ``conv2d_transpose``)."""
    intermediate = re.sub("(.)([A-Z][a-z0-9]+)", r"\1_\2", class_name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", intermediate).lower()


def _initializer(class_name: str) -> dict[str, Any]:
    config: dict[str, Any] = {"seed": None} if class_name == "GlorotUniform" else {}
    return {
        "module": "keras.initializers",
        "class_name": class_name,
        "config": config,
        "registered_name": None,
    }


def _array(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().to(torch.float32).numpy())


class KerasBuilder:
    """Records Keras layer calls in creation order; names them as a fresh Keras session would.

    Tensors are layer names (every layer is called once). ``batch`` is the fixed batch size of
    the input layer: the original saves ``[1, None, None, C]`` after its inference rebuild, and
    ``None`` for the Pix2pix generator, which it saves as built.
    """

    def __init__(self, in_channels: int, batch: int | None = 1, depth: int | None = None) -> None:
        self.entries: list[KerasLayerEntry] = []
        self._counts: Counter[str] = Counter()
        self.input_name = self._name("input", zero_based=False)
        # a 3D slab network (``depth``): Keras (batch, H, W, D, C), as the original's ezm-3d
        spatial = [None, None] if depth is None else [None, None, int(depth)]
        config = {
            "batch_input_shape": [batch, *spatial, int(in_channels)],
            "dtype": "float32",
            "sparse": False,
            "ragged": False,
            "name": self.input_name,
        }
        self.entries.append(KerasLayerEntry(self.input_name, "InputLayer", config, []))

    def _name(self, prefix: str, zero_based: bool = True) -> str:
        n = self._counts[prefix]
        self._counts[prefix] += 1
        if zero_based:
            return prefix if n == 0 else f"{prefix}_{n}"
        return f"{prefix}_{n + 1}"

    def _add(
        self,
        class_name: str,
        inputs: Sequence[str],
        fields: dict[str, Any],
        weights: list[tuple[str, np.ndarray]] | None = None,
    ) -> str:
        name = self._name(_snake(class_name))
        config = {"name": name, "trainable": True, "dtype": "float32", **fields}
        self.entries.append(KerasLayerEntry(name, class_name, config, list(inputs), weights or []))
        return name

    # -- weighted layers ------------------------------------------------------------------------
    def conv(self, x: str, m: nn.Conv2d, activation: str, padding: str = "same") -> str:
        """``Conv2D`` with a fused activation; ``padding`` as the original wrote it."""
        k, s = _square(m.kernel_size, m), _square(m.stride, m)
        if m.groups != 1 or _square(m.dilation, m) != 1 or m.bias is None:
            raise NoKerasTwin(f"{type(m).__name__}: only ungrouped, undilated convs with bias")
        native = _square(m.padding, m) if isinstance(m.padding, tuple) else -1
        same_ok = native == 0 or (s == 1 and k % 2 == 1 and native == k // 2)
        if not (same_ok if padding == "same" else (native == 0 and k == 1)):
            raise NoKerasTwin(f"conv {k}x{k} stride {s} padding {m.padding}: not Keras {padding!r}")
        fields = {
            "filters": int(m.out_channels),
            "kernel_size": [k, k],
            "strides": [s, s],
            "padding": padding,
            "data_format": "channels_last",
            "dilation_rate": [1, 1],
            "groups": 1,
            "activation": activation,
            **_conv_tail(),
        }
        return self._add("Conv2D", [x], fields, _weights("conv", m))

    def conv_transpose(self, x: str, m: nn.ConvTranspose2d) -> str:
        """``Conv2DTranspose(k, strides=k, padding="same")``, linear: exactly k× up."""
        k, s = _square(m.kernel_size, m), _square(m.stride, m)
        plain = _square(m.padding, m) == 0 and _square(m.output_padding, m) == 0
        if k != s or not plain or m.groups != 1 or _square(m.dilation, m) != 1 or m.bias is None:
            raise NoKerasTwin(f"transposed conv k={k} s={s}: only k == stride, no padding")
        fields = {
            "filters": int(m.out_channels),
            "kernel_size": [k, k],
            "strides": [s, s],
            "padding": "same",
            "data_format": "channels_last",
            "dilation_rate": [1, 1],
            "groups": 1,
            "activation": "linear",
            **_conv_tail(),
            "output_padding": None,
        }
        return self._add("Conv2DTranspose", [x], fields, _weights("conv", m))

    # -- 3D (slab) layers: Keras orders the axes (H, W, D), ours (D, H, W) -----------------------
    def conv3d(self, x: str, m: nn.Conv3d, activation: str, padding: str = "same") -> str:
        """``Conv3D`` with odd kernels at stride 1 (``"same"``) or a 1×1×1 kernel."""
        k = _hwd(m.kernel_size)
        native = tuple(int(p) for p in m.padding) if isinstance(m.padding, tuple) else None
        plain = _hwd(m.stride) == [1, 1, 1] and _hwd(m.dilation) == [1, 1, 1]
        same_ok = native == tuple(n // 2 for n in m.kernel_size) and all(n % 2 for n in k)
        valid_ok = native == (0, 0, 0) and k == [1, 1, 1]
        if not plain or m.groups != 1 or m.bias is None or not (same_ok or valid_ok):
            raise NoKerasTwin(f"Conv3d {m.kernel_size} {m.padding}: no Keras Conv3D twin")
        fields = {
            "filters": int(m.out_channels),
            "kernel_size": k,
            "strides": [1, 1, 1],
            "padding": padding,
            "data_format": "channels_last",
            "dilation_rate": [1, 1, 1],
            "groups": 1,
            "activation": activation,
            **_conv_tail(),
        }
        return self._add("Conv3D", [x], fields, _weights("conv", m))

    def conv3d_transpose(self, x: str, m: nn.ConvTranspose3d) -> str:
        """``Conv3DTranspose(k, strides=k, padding="same")``, linear: exactly k× up per axis."""
        k, s = _hwd(m.kernel_size), _hwd(m.stride)
        plain = all(int(p) == 0 for p in (*m.padding, *m.output_padding))
        if k != s or not plain or m.groups != 1 or m.bias is None:
            raise NoKerasTwin(f"ConvTranspose3d k={k} s={s}: only k == stride, no padding")
        fields = {
            "filters": int(m.out_channels),
            "kernel_size": k,
            "strides": s,
            "padding": "same",
            "data_format": "channels_last",
            "dilation_rate": [1, 1, 1],
            "groups": 1,
            "activation": "linear",
            **_conv_tail(),
            "output_padding": None,
        }
        return self._add("Conv3DTranspose", [x], fields, _weights("conv", m))

    def max_pool3d(self, x: str, m: nn.MaxPool3d, padding: str = "valid") -> str:
        """``MaxPooling3D(pool, padding)``: on sizes the pool divides, "same" equals "valid"."""
        k, s = _hwd(m.kernel_size), _hwd(m.stride)
        if k != s or any(int(p) for p in _hwd(m.padding)) or m.ceil_mode:
            raise NoKerasTwin(f"MaxPool3d k={k} s={s}: only non-overlapping, unpadded pools")
        fields = {"pool_size": k, "padding": padding, "strides": s, "data_format": "channels_last"}
        return self._add("MaxPooling3D", [x], fields)

    def batch_norm(self, x: str, m: nn.BatchNorm2d | nn.BatchNorm3d) -> str:
        if not (m.affine and m.track_running_stats) or m.momentum is None:
            raise NoKerasTwin("BatchNorm2d without affine parameters or running statistics")
        fields = {
            "axis": [4 if isinstance(m, nn.BatchNorm3d) else 3],
            "momentum": round(1.0 - float(m.momentum), 6),  # torch → Keras convention
            "epsilon": float(m.eps),
            "center": True,
            "scale": True,
            "beta_initializer": _initializer("Zeros"),
            "gamma_initializer": _initializer("Ones"),
            "moving_mean_initializer": _initializer("Zeros"),
            "moving_variance_initializer": _initializer("Ones"),
            "beta_regularizer": None,
            "gamma_regularizer": None,
            "beta_constraint": None,
            "gamma_constraint": None,
        }
        return self._add("BatchNormalization", [x], fields, _weights("batch_norm", m))

    # -- layers without weights -------------------------------------------------------------------
    def max_pool(self, x: str, m: nn.MaxPool2d) -> str:
        k, s = _square(m.kernel_size, m), _square(m.stride, m)
        p = _square(m.padding, m)
        if p == 0:
            padding = "valid"
        elif s == 1 and k % 2 == 1 and p == k // 2:
            padding = "same"  # torch pads with -inf, like TF's "same" max-pool
        else:
            raise NoKerasTwin(f"max-pool k={k} s={s} padding={p} has no Keras twin")
        if _square(m.dilation, m) != 1 or m.ceil_mode:
            raise NoKerasTwin("dilated or ceil-mode max-pooling has no Keras twin")
        fields = {
            "pool_size": [k, k],
            "padding": padding,
            "strides": [s, s],
            "data_format": "channels_last",
        }
        return self._add("MaxPooling2D", [x], fields)

    def up_sampling(self, x: str, m: nn.Upsample) -> str:
        factor = m.scale_factor
        factor = factor if isinstance(factor, int | float) else None
        if m.mode != "nearest" or factor is None or float(factor) != int(factor):
            raise NoKerasTwin(f"Upsample(mode={m.mode}, scale={m.scale_factor}) has no Keras twin")
        fields = {
            "size": [int(factor)] * 2,
            "data_format": "channels_last",
            "interpolation": "nearest",
        }
        return self._add("UpSampling2D", [x], fields)

    def dropout(self, x: str, m: nn.Dropout) -> str:
        return self._add("Dropout", [x], {"rate": float(m.p), "noise_shape": None, "seed": None})

    def leaky_relu(self, x: str, m: nn.LeakyReLU) -> str:
        # Keras keeps alpha as a float32 and serialises that value (0.2 → 0.20000000298023224)
        return self._add("LeakyReLU", [x], {"alpha": float(np.float32(m.negative_slope))})

    def activation(self, x: str, name: str) -> str:
        return self._add("Activation", [x], {"activation": name})

    def concatenate(self, xs: Sequence[str], axis: int = -1) -> str:
        """Channel concatenation; ``axis`` as the original wrote it (-1, or 3 in ezm-2d)."""
        return self._add("Concatenate", xs, {"axis": axis})

    def add(self, xs: Sequence[str]) -> str:
        return self._add("Add", xs, {})

    def sequence(self, x: str, modules: nn.Module) -> str:
        """The plain chains our archs are made of: conv(+relu)(+BN), pools, dropout, up."""
        from ais_torch.archs.layers import ConvReLU, ConvReLUBN

        for m in modules.children() if isinstance(modules, nn.Sequential) else [modules]:
            if isinstance(m, ConvReLUBN):
                x = self.batch_norm(self.conv(x, m.conv, "relu"), m.bn)
            elif isinstance(m, ConvReLU):
                x = self.conv(x, m.conv, "relu")
            elif isinstance(m, nn.Sequential):
                x = self.sequence(x, m)
            elif isinstance(m, nn.MaxPool2d):
                x = self.max_pool(x, m)
            elif isinstance(m, nn.Dropout):
                x = self.dropout(x, m)
            elif isinstance(m, nn.ConvTranspose2d):
                x = self.conv_transpose(x, m)
            elif isinstance(m, nn.Upsample):
                x = self.up_sampling(x, m)
            elif not isinstance(m, nn.Identity):
                raise NoKerasTwin(f"layer {type(m).__name__} has no Keras twin")
        return x

    def functional(self, output: str) -> KerasFunctional:
        """The finished graph, layers in the order Keras' ``Functional`` lists them."""
        return KerasFunctional(keras_layer_order(self.entries, output), self.input_name, output)


def _square(value: Any, m: nn.Module) -> int:
    values = value if isinstance(value, tuple | list) else (value, value)
    if len(set(values)) != 1 or isinstance(values[0], str):
        raise NoKerasTwin(f"{type(m).__name__}: non-square setting {value!r} is not supported")
    return int(values[0])


def _hwd(value: Any) -> list[int]:
    """A 3D torch setting (D, H, W) in Keras' axis order (H, W, D)."""
    d, h, w = value if isinstance(value, tuple | list) else (value,) * 3
    return [int(h), int(w), int(d)]


def _conv_tail() -> dict[str, Any]:
    return {
        "use_bias": True,
        "kernel_initializer": _initializer("GlorotUniform"),
        "bias_initializer": _initializer("Zeros"),
        "kernel_regularizer": None,
        "bias_regularizer": None,
        "activity_regularizer": None,
        "kernel_constraint": None,
        "bias_constraint": None,
    }


def _weights(kind: str, m: nn.Module) -> list[tuple[str, np.ndarray]]:
    """``(Keras name, array in Keras layout)`` for a conv or BN module, from the shared table."""
    out = []
    for keras_name, torch_name in KERAS_SLOTS[kind]:
        array = _array(getattr(m, torch_name))
        if keras_name == "kernel" and array.ndim == 5:  # (o, i, D, H, W) → Keras (H, W, D)
            array = np.ascontiguousarray(array.transpose(0, 1, 3, 4, 2))
        out.append((keras_name, kernel_to_keras(array) if keras_name == "kernel" else array))
    return out


def keras_layer_order(entries: list[KerasLayerEntry], output: str) -> list[KerasLayerEntry]:
    """Keras 2.15 ``Functional.layers`` order (``functional._map_graph_network``).

    A depth-first walk from the output (inputs in call order) numbers the layers; each layer's
    depth is 1 + the largest depth of its users (output = 0). Layers are listed by decreasing
    depth, ties in walk order. Layers the output does not depend on are not part of the model.
    """
    by_name = {e.name: e for e in entries}
    walk: dict[str, int] = {}
    finished: list[str] = []
    done: set[str] = set()
    stack: list[tuple[str, bool]] = [(output, False)]
    while stack:
        name, expanded = stack.pop()
        if expanded:
            done.add(name)
            finished.append(name)
            continue
        if name in done:
            continue
        walk.setdefault(name, len(walk))
        stack.append((name, True))
        stack.extend((src, False) for src in reversed(by_name[name].inputs) if src not in done)
    depth: dict[str, int] = {}
    for name in reversed(finished):
        d = depth.setdefault(name, 0)
        for src in by_name[name].inputs:
            depth[src] = max(d + 1, depth.get(src, 0))
    ordered = sorted(walk, key=lambda n: (-depth[n], walk[n]))
    return [by_name[n] for n in ordered]


# -- the graph itself comes from the model ------------------------------------------------------
@runtime_checkable
class KerasEmitting(Protocol):
    """What an architecture defines to be exportable: ``keras_graph``.

    ``keras_graph(builder, x)`` replays the original's Keras ``create()`` on the model's own
    modules through ``builder`` (starting from the input layer's name ``x``) and returns the
    output layer's name. Ours live next to each class in :mod:`ais_torch.archs`; a plugin
    architecture joins by defining the same method (and, if the original saved the network
    with a free batch size, the class attribute ``keras_input_batch = None``).
    """

    def keras_graph(self, builder: KerasBuilder, x: str) -> str: ...


def keras_functional(model: nn.Module) -> KerasFunctional:
    """``model`` (an architecture that defines ``keras_graph``) as a Keras graph + weights.

    Raises :class:`NoKerasTwin` for other models (generic Keras graphs, plugins without the
    method). A 3D slab network (``n_spatial_dims == 3``) gets the original's 5-D input
    ``(1, None, None, depth, 1)``.
    """
    if not isinstance(model, KerasEmitting):
        raise NoKerasTwin(
            f"{type(model).__name__} has no Keras twin in the original Ais: it defines no "
            "keras_graph(builder, x) method, so it cannot be written as Keras .h5"
        )
    in_channels = int(model.hparams.in_channels)
    depth = int(model.hparams.depth) if getattr(model, "n_spatial_dims", 2) == 3 else None
    builder = KerasBuilder(in_channels, batch=getattr(model, "keras_input_batch", 1), depth=depth)
    with torch.no_grad():
        output = model.keras_graph(builder, builder.input_name)
    return builder.functional(output)
