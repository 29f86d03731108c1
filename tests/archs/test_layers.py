"""Keras/TensorFlow semantics of the building blocks, checked against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ais_torch import archs
from ais_torch.archs.layers import Conv2dSame, conv, pad_same, tf_same_padding

GRID = torch.arange(1.0, 10.0).reshape(1, 1, 3, 3)  # [[1,2,3],[4,5,6],[7,8,9]]


def ones_conv(kernel: int, stride: int) -> Conv2dSame:
    layer = Conv2dSame(1, 1, kernel, stride)
    nn.init.ones_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "expected"),
    [
        (3, 4, 1, (1, 2)),  # even kernel, stride 1: the odd pixel goes after
        (64, 4, 1, (1, 2)),
        (64, 4, 2, (1, 1)),  # stride 2 on an even size: symmetric
        (5, 4, 2, (1, 2)),  # stride 2 on an odd size: extra after
        (64, 3, 1, (1, 1)),
        (64, 15, 1, (7, 7)),
        (7, 1, 1, (0, 0)),
    ],
)
def test_tf_same_padding(size: int, kernel: int, stride: int, expected: tuple[int, int]) -> None:
    assert tf_same_padding(size, kernel, stride) == expected


def test_even_kernel_stride_1_pads_one_before_two_after() -> None:
    # Each output sums input rows i-1..i+2 and columns j-1..j+2 (TF pads 1 before, 2 after).
    expected = torch.tensor([[45.0, 45.0, 33.0], [45.0, 45.0, 33.0], [39.0, 39.0, 28.0]])
    with torch.no_grad():
        out = ones_conv(4, 1)(GRID)
    assert torch.equal(out[0, 0], expected)


def test_even_kernel_stride_2_on_odd_size_pads_extra_after() -> None:
    # 5x5 ones, k=4, s=2: TF pads 1 before, 2 after -> windows of 3, 4, 2 rows/columns.
    expected = torch.tensor([[9.0, 12.0, 6.0], [12.0, 16.0, 8.0], [6.0, 8.0, 4.0]])
    with torch.no_grad():
        out = ones_conv(4, 2)(torch.ones(1, 1, 5, 5))
    assert torch.equal(out[0, 0], expected)


def test_even_kernel_stride_2_on_even_size_is_symmetric() -> None:
    x = torch.zeros(1, 1, 4, 4)
    x[..., 0, 0] = 1.0  # only the top-left pixel: seen by output (0, 0) iff padding before is 1
    with torch.no_grad():
        out = ones_conv(4, 2)(x)
    assert out.shape == (1, 1, 2, 2)
    assert torch.equal(out[0, 0], torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    assert pad_same(x, 4, 2).shape == (1, 1, 6, 6)


def test_conv_helper_uses_native_padding_only_where_tf_is_symmetric() -> None:
    assert type(conv(1, 1, 3)) is nn.Conv2d
    assert type(conv(1, 1, 4)) is Conv2dSame
    assert type(conv(1, 1, 3, stride=2)) is Conv2dSame


def test_same_maxpool_pads_with_minus_infinity() -> None:
    model = archs.build("inceptionnet")
    pool = model.blocks[0].pool
    out = pool(-torch.ones(1, 1, 4, 4))  # zero padding would put 0 on the border
    assert torch.equal(out, -torch.ones(1, 1, 4, 4))


def test_eman2_output_is_blocky_half_resolution() -> None:
    model = archs.build("eman2").eval()
    with torch.no_grad():
        out = model(torch.randn(1, 1, 16, 16))
    assert torch.equal(out[..., ::2, ::2], out[..., 1::2, 1::2])


@pytest.mark.parametrize("name", ["vggnet_l", "unet_m", "ezm2d", "pix2pix", "vggnet_s"])
def test_keras_initialisation_and_batchnorm_constants(name: str) -> None:
    model = archs.build(name)
    momentum = 0.2 if name.startswith("pix2pix") else 0.01
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert convs
    for m in convs:
        fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(m.weight)
        limit = math.sqrt(6.0 / (fan_in + fan_out))  # glorot uniform
        assert m.weight.abs().max() <= limit
        if m.weight.numel() >= 100:  # not drawn from a much narrower range either
            assert m.weight.abs().max() > 0.5 * limit
        assert torch.count_nonzero(m.bias) == 0
    for m in bns:
        assert m.eps == 1e-3
        assert m.momentum == momentum
    assert bool(bns) == (name != "vggnet_s")


def test_module_order_follows_keras_layer_order() -> None:
    """Weight-bearing layers appear in Keras order (the later .h5 importer relies on it)."""
    model = archs.build("unet_m")
    weighted = nn.Conv2d | nn.ConvTranspose2d | nn.BatchNorm2d
    kinds = [type(m).__name__ for m in model.modules() if isinstance(m, weighted)]
    # Keras (original kit layer list): 10 conv/BN pairs down to the bottleneck, then per stage a
    # transposed conv and two conv/BN pairs, then the head.
    down = ["Conv2d", "BatchNorm2d"] * 10
    stage = ["ConvTranspose2d", *["Conv2d", "BatchNorm2d"] * 2]
    assert kinds == [*down, *stage * 4, "Conv2d"]
    first_bn = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert first_bn.num_features == 32
