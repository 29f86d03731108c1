"""Building blocks that reproduce Keras/TensorFlow layer semantics in PyTorch.

The original Ais models are Keras models. To map their weights onto ours one layer at a time, each
Keras layer becomes one PyTorch module with the same padding, initialisation and BatchNorm
constants. The differences that matter are collected here, in one place:

* TensorFlow ``padding="same"`` pads ``max((ceil(n/s) - 1)*s + k - n, 0)`` pixels per axis and
  puts the odd pixel *after* (bottom/right). For an even kernel at stride 1 (Pix2pix, k=4) that
  is 1 before / 2 after, which ``nn.Conv2d(padding=...)`` cannot express; :class:`Conv2dSame`
  pads explicitly.
* Keras initialises conv kernels glorot-uniform and biases to zero (PyTorch: Kaiming-uniform);
  that is decided for the whole network in one place, :meth:`AisArch.initialise_weights`.
* Keras ``BatchNormalization`` has epsilon 1e-3 and momentum 0.99, i.e. PyTorch momentum 0.01.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

KERAS_BN_EPS = 1e-3
KERAS_BN_MOMENTUM = 0.01  # Keras momentum 0.99 (weight of the old value) = PyTorch 1 - 0.99


def tf_same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """Pixels (before, after) that TensorFlow's ``"same"`` padding adds on one axis."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def pad_same(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """Zero-pad the last two axes of ``x`` exactly as TensorFlow's ``"same"`` would.

    Under ``torch.export``/ONNX with dynamic H and W the sizes are symbolic, and the exporter
    does not finish on TF's size-dependent formula. There the sizes are declared multiples of
    the stride (``torch._check``: an assertion in the exported program; every architecture's
    input is a multiple of its ``min_size_multiple`` anyway), for which the padding is fixed:
    ``kernel - stride`` in total, the odd pixel after, the same as the formula gives.
    """
    h, w = x.shape[-2], x.shape[-1]
    if isinstance(h, int) and isinstance(w, int):
        top, bottom = tf_same_padding(h, kernel, stride)
        left, right = tf_same_padding(w, kernel, stride)
    else:
        torch._check(h % stride == 0)
        torch._check(w % stride == 0)
        total = max(kernel - stride, 0)
        top = left = total // 2
        bottom = right = total - total // 2
    if top == bottom == left == right == 0:
        return x
    return F.pad(x, (left, right, top, bottom))


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow ``"same"`` padding for any kernel size and stride.

    It is still an ``nn.Conv2d`` (same ``weight``/``bias``), so state dicts and Keras weight
    mapping do not care which of the two a model uses.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(pad_same(x, self.kernel_size[0], self.stride[0]))


def conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> nn.Conv2d:
    """A Keras ``Conv2D(padding="same")``: native symmetric padding where TF's is symmetric."""
    if stride == 1 and kernel_size % 2 == 1:
        return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
    return Conv2dSame(in_channels, out_channels, kernel_size, stride)


def conv_transpose2x(in_channels: int, out_channels: int) -> nn.ConvTranspose2d:
    """A Keras ``Conv2DTranspose(k=2, strides=2, padding="same")``: exactly doubles H and W."""
    return nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)


def batch_norm(channels: int, momentum: float = KERAS_BN_MOMENTUM) -> nn.BatchNorm2d:
    """A Keras ``BatchNormalization()`` (epsilon 1e-3); ``momentum`` in PyTorch's convention."""
    return nn.BatchNorm2d(channels, eps=KERAS_BN_EPS, momentum=momentum)


def upsample2x() -> nn.Upsample:
    """A Keras ``UpSampling2D(2)``: nearest neighbour."""
    return nn.Upsample(scale_factor=2, mode="nearest")


class ConvReLUBN(nn.Sequential):
    """Keras ``Conv2D(3x3, relu)`` followed by ``BatchNormalization()`` (BN after the ReLU)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        super().__init__()
        self.conv = conv(in_channels, out_channels, kernel_size)
        self.relu = nn.ReLU()
        self.bn = batch_norm(out_channels)


class ConvReLU(nn.Sequential):
    """Keras ``Conv2D(k, relu)``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        super().__init__()
        self.conv = conv(in_channels, out_channels, kernel_size)
        self.relu = nn.ReLU()


def conv_block(in_channels: int, widths: list[int], batch_norm_after: bool) -> nn.Sequential:
    """Consecutive 3x3 relu convs (each optionally followed by BN), in Keras order."""
    layers: list[nn.Module] = []
    c = in_channels
    for w in widths:
        layers.append(ConvReLUBN(c, w) if batch_norm_after else ConvReLU(c, w))
        c = w
    return nn.Sequential(*layers)
