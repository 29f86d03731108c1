"""Seeded weights and inputs for the ezm-3d parity tests, shared by TensorFlow and torch.

Imported both by our tests and by the script that runs under the original Ais's Python
(numpy only, no ais_torch), so both sides build the same network from the same numbers: every
layer's Keras weights, in the original's layer order, are drawn here from one seed.
Kernels are He-scaled and BatchNorm statistics near 1, so a random network's output still
varies between 0 and 1 instead of saturating.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the original's Python has neither
    import torch

    from ais_torch.archs.ezm3d import EzM3D

SEED = 1234
INPUT_SHAPE = (16, 32, 32)  # (D, H, W): one slab of the original's depth on a 32 x 32 box
Z_JITTER = 16


def layer_weights(kind: str, shapes: list[tuple[int, ...]], rng: np.random.Generator) -> list:
    """Keras arrays of one layer: ``kind`` is ``conv``, ``conv_transpose`` or ``batch_norm``."""
    if kind == "batch_norm":
        (n,) = shapes[0]
        return [
            rng.uniform(0.8, 1.2, n).astype(np.float32),  # gamma
            rng.normal(0.0, 0.1, n).astype(np.float32),  # beta
            rng.normal(0.0, 0.1, n).astype(np.float32),  # moving mean
            rng.uniform(0.8, 1.2, n).astype(np.float32),  # moving variance
        ]
    kernel, bias = shapes
    cin = kernel[-1] if kind == "conv_transpose" else kernel[-2]
    fan_in = int(np.prod(kernel[:-2])) * cin
    return [
        rng.normal(0.0, np.sqrt(2.0 / fan_in), kernel).astype(np.float32),
        rng.normal(0.0, 0.05, bias).astype(np.float32),
    ]


def all_weights(layers: list[tuple[str, list[tuple[int, ...]]]], seed: int = SEED) -> list:
    """Weights of every weighted layer ``(kind, Keras shapes)``, in order, from one seed."""
    rng = np.random.default_rng(seed)
    return [layer_weights(kind, shapes, rng) for kind, shapes in layers]


def slab_input(seed: int = SEED) -> np.ndarray:
    """The ``(1, 1, D, H, W)`` input both sides predict."""
    return np.random.default_rng(seed + 1).standard_normal((1, 1, *INPUT_SHAPE)).astype(np.float32)


def _to_ours(kernel: np.ndarray) -> torch.Tensor:
    """Keras ``(kh, kw, kd, a, b)`` → our ``(b, a, kd, kh, kw)``."""
    import torch

    from ais_torch.formats.keras.weights import kernel_to_torch

    return torch.from_numpy(kernel_to_torch(kernel)).permute(0, 1, 4, 2, 3).contiguous()


def seeded(preset: str) -> EzM3D:
    """Our network with the recipe's weights, drawn in the original's Keras layer order
    (ais_torch side only: imports torch)."""
    import torch
    from torch import nn

    from ais_torch import archs
    from ais_torch.formats.keras.weights import kernel_to_keras

    model = archs.build(preset).eval()
    modules = [m for m in model.modules() if isinstance(m, nn.Conv3d | nn.ConvTranspose3d)
               or isinstance(m, nn.BatchNorm3d)]  # fmt: skip
    layers = []
    for m in modules:
        if isinstance(m, nn.BatchNorm3d):
            layers.append(("batch_norm", [(m.num_features,)] * 4))
        else:
            keras = kernel_to_keras(m.weight.detach().permute(0, 1, 3, 4, 2).numpy()).shape
            kind = "conv_transpose" if isinstance(m, nn.ConvTranspose3d) else "conv"
            layers.append((kind, [keras, tuple(m.bias.shape)]))
    with torch.no_grad():
        for m, values in zip(modules, all_weights(layers), strict=True):
            if isinstance(m, nn.BatchNorm3d):
                for t, v in zip(
                    (m.weight, m.bias, m.running_mean, m.running_var), values, strict=True
                ):
                    t.copy_(torch.from_numpy(v))
            else:
                m.weight.copy_(_to_ours(values[0]))
                m.bias.copy_(torch.from_numpy(values[1]))
    return model
