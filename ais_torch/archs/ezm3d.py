"""ezm-3d: the original's 3D slab networks (``ezm-3d-M``, ``ezm-3d-L``), a slab in, a slab out.

The original (Ais 1.2.40, ``easymode_3d.py`` / ``easymode_3d_wide.py``) feeds a slab of ``D``
slices (16 by default) as a 3D volume and returns a probability for every voxel of the slab: a
3D U-Net whose decoder keeps Z, so neighbouring output slices pass through the same Z-mixing
convolutions ("Z-coupled"). Layout here is torch's ``(B, 1, D, H, W)`` → ``(B, 1, D, H, W)``;
Keras stores the same network as ``(B, H, W, D, 1)`` (depth last), which the Keras bridge
permutes (:mod:`ais_torch.formats.keras.read`).

Topology, in Keras layer order (which is also the order of the modules here):

* encoder level i: convs ``encoder[i]`` (each Conv3D relu → BatchNormalization), the skip;
  then MaxPooling3D 2 in Y and X, and in Z too where ``z_pool[i]`` (levels 1-2 in the original);
* bottleneck: convs → Dropout;
* decoder stage j (deepest first): Conv3DTranspose 2 (Z too where that level pooled Z),
  concatenate [up, skip], convs;
* head: Conv3D 1×1×1, sigmoid.

A conv is ``[filters, kz, kxy]``: kernel ``kz × kxy × kxy`` in (Z, Y, X). ezm-3d-M uses full
3×3×3 kernels; ezm-3d-L factors the deep levels into 1×3×3 and 3×1×1 kernels. Parameter counts
(Keras ``count_params``): 19,579,265 (M) and 30,981,761 (L). Both train with Adam at 5e-5 and
masked BCE + Dice (weights 1 and 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from ais_torch.archs.base import AisArch
from ais_torch.archs.layers import KERAS_BN_EPS, KERAS_BN_MOMENTUM
from ais_torch.archs.presets import register_preset
from ais_torch.errors import AisInputError, ConfigError

if TYPE_CHECKING:
    from typing import Unpack

    from ais_torch.archs.base import CommonHparams
    from ais_torch.formats.keras.emit import KerasBuilder

ConvSpec = Sequence[int]
"""``[filters, kz, kxy]``: a Conv3D with a ``kz × kxy × kxy`` kernel (Z, Y, X)."""

DEFAULT_DEPTH = 16
"""Slab depth the original builds and trains ezm-3d with (``box_depth`` 16)."""


class ConvReLUBN3d(nn.Sequential):
    """Keras ``Conv3D(k, relu, padding="same")`` → ``BatchNormalization()`` (odd kernels only)."""

    def __init__(self, in_channels: int, out_channels: int, kz: int, kxy: int) -> None:
        super().__init__()
        if kz % 2 == 0 or kxy % 2 == 0:
            raise ConfigError(f"ezm-3d: kernel {kz}x{kxy}x{kxy} must be odd in every axis")
        kernel = (kz, kxy, kxy)
        self.conv = nn.Conv3d(
            in_channels, out_channels, kernel, padding=(kz // 2, kxy // 2, kxy // 2)
        )
        self.relu = nn.ReLU()
        self.bn = nn.BatchNorm3d(out_channels, eps=KERAS_BN_EPS, momentum=KERAS_BN_MOMENTUM)


def _convs(in_channels: int, specs: Sequence[ConvSpec], where: str) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    c = in_channels
    for spec in specs:
        if len(spec) != 3 or any(int(v) < 1 for v in spec):
            raise ConfigError(f"ezm-3d: {where}: a conv is [filters, kz, kxy], got {list(spec)}")
        filters, kz, kxy = (int(v) for v in spec)
        layers.append(ConvReLUBN3d(c, filters, kz, kxy))
        c = filters
    if not layers:
        raise ConfigError(f"ezm-3d: {where} needs at least one conv")
    return nn.Sequential(*layers), c


class UpStage3d(nn.Module):
    """Conv3DTranspose ×2, concatenate [up, skip], convolve: one decoder stage."""

    def __init__(self, up: nn.ConvTranspose3d, convs: nn.Sequential) -> None:
        super().__init__()
        self.up = up
        self.convs = convs

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.convs(torch.cat([self.up(x), skip], dim=1))


_FULL = [3, 3]  # a 3x3x3 kernel, as [kz, kxy]


def _full(*widths: int) -> list[list[int]]:
    return [[w, *_FULL] for w in widths]


class EzM3D(AisArch):
    """The ezm-3d slab U-Net; the defaults are ezm-3d-M (see the module docstring)."""

    title = "ezm-3d"
    n_spatial_dims: ClassVar[int] = 3
    emits_slab: ClassVar[bool] = True  # every slice of the slab is predicted, not its centre
    keras_input_batch: ClassVar[int | None] = 1

    def __init__(
        self,
        *,
        encoder: Sequence[Sequence[ConvSpec]] = (
            _full(32, 32),
            _full(64, 64),
            _full(128, 128),
            _full(256, 256),
        ),
        bottleneck: Sequence[ConvSpec] = _full(512, 512),
        decoder: Sequence[Sequence[ConvSpec]] = (_full(256), _full(128), _full(64), _full(32)),
        up_widths: Sequence[int] = (256, 128, 64, 32),
        z_pool: Sequence[bool] = (True, True, False, False),
        bottleneck_dropout: float = 0.25,
        depth: int = DEFAULT_DEPTH,
        learning_rate: float = 5e-5,
        loss: str = "bce_dice",
        bce_weight: float = 1.0,
        dice_weight: float = 1.0,
        **common: Unpack[CommonHparams],
    ) -> None:
        super().__init__(
            learning_rate=learning_rate,
            loss=loss,
            bce_weight=bce_weight,
            dice_weight=dice_weight,
            **common,
        )
        n = len(encoder)
        if n < 1 or len(decoder) != n or len(up_widths) != n or len(z_pool) != n:
            raise ConfigError(
                f"ezm-3d: need one decoder stage, up width and z_pool flag per encoder level; "
                f"got {n} levels, {len(decoder)} stages, {len(up_widths)} up widths, "
                f"{len(z_pool)} z_pool flags"
            )
        self.min_size_multiple = 2**n
        self.z_multiple = 2 ** sum(bool(z) for z in z_pool)
        if int(depth) < 1 or int(depth) % self.z_multiple:
            raise ConfigError(
                f"ezm-3d: depth={depth} must be a positive multiple of {self.z_multiple} "
                "(the network halves Z that many times)"
            )

        levels: list[nn.Module] = []
        pools: list[nn.Module] = []
        skips: list[int] = []
        c = self.hparams.in_channels
        for i, specs in enumerate(encoder):
            block, c = _convs(c, specs, f"encoder level {i + 1}")
            levels.append(block)
            skips.append(c)
            pools.append(nn.MaxPool3d(self._factor(z_pool[i])))
        self.encoder = nn.ModuleList(levels)
        self.pools = nn.ModuleList(pools)
        self.bottleneck, c = _convs(c, bottleneck, "the bottleneck")
        if bottleneck_dropout > 0:
            self.bottleneck.append(nn.Dropout(bottleneck_dropout))

        stages: list[nn.Module] = []
        for j, specs in enumerate(decoder):
            level = n - 1 - j
            factor = self._factor(z_pool[level])
            up = nn.ConvTranspose3d(c, int(up_widths[j]), factor, stride=factor)
            block, c = _convs(int(up_widths[j]) + skips[level], specs, f"decoder stage {j + 1}")
            stages.append(UpStage3d(up, block))
        self.stages = nn.ModuleList(stages)
        self.head = nn.Conv3d(c, 1, 1)

    @staticmethod
    def _factor(z: bool) -> tuple[int, int, int]:
        return (2 if z else 1, 2, 2)

    @property
    def depth(self) -> int:
        """Slab depth (Z slices) the model was built and trained for."""
        return int(self.hparams.depth)

    @property
    def example_input_array(self) -> torch.Tensor:
        if self._example_input_array is None:
            size = self.example_size
            shape = (1, self.hparams.in_channels, self.depth, size, size)
            self._example_input_array = torch.zeros(shape)
        return self._example_input_array

    @example_input_array.setter
    def example_input_array(self, example: torch.Tensor | None) -> None:
        self._example_input_array = example

    def check_input_shape(self, x: torch.Tensor) -> None:
        """Raise a specific error (with a shape that would work) for an unusable slab."""
        c = self.hparams.in_channels
        if x.ndim != 5 or x.shape[1] != c:
            raise AisInputError(
                f"{self.title} expects a slab (B, {c}, D, H, W), got {tuple(x.shape)}"
            )
        d, h, w = x.shape[-3:]
        m, mz = self.min_size_multiple, self.z_multiple
        if h % m or w % m or d % mz:
            raise AisInputError(
                f"{self.title} needs D divisible by {mz} and H, W by {m}, got {d}x{h}x{w}; pad "
                f"the input to {-(-d // mz) * mz}x{-(-h // m) * m}x{-(-w // m) * m}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._should_check():
            self.check_input_shape(x)
        skips = []
        for level, pool in zip(self.encoder, self.pools, strict=True):
            x = level(x)
            skips.append(x)
            x = pool(x)
        x = self.bottleneck(x)
        for stage, skip in zip(self.stages, reversed(skips), strict=True):
            x = stage(x, skip)
        return torch.sigmoid(self.head(x))

    def keras_graph(self, b: KerasBuilder, x: str) -> str:
        """The original's ``create()`` (easymode_3d / easymode_3d_wide) on these modules."""

        def convs(x: str, block: nn.Module) -> str:
            for m in block.children():
                if isinstance(m, ConvReLUBN3d):
                    x = b.batch_norm(b.conv3d(x, m.conv, "relu"), m.bn)
                elif isinstance(m, nn.Dropout):
                    x = b.dropout(x, m)
            return x

        skips = []
        for level, pool in zip(self.encoder, self.pools, strict=True):
            x = convs(x, level)
            skips.append(x)
            z_pooled = pool.kernel_size[0] == 2  # the original pools Z with padding "same"
            x = b.max_pool3d(x, pool, padding="same" if z_pooled else "valid")
        x = convs(x, self.bottleneck)
        for stage, skip in zip(self.stages, reversed(skips), strict=True):
            up = b.conv3d_transpose(x, stage.up)
            x = convs(b.concatenate([up, skip], -1), stage.convs)
        return b.conv3d(x, self.head, "sigmoid", padding="valid")


def _factored(width: int) -> list[list[int]]:
    """easymode_3d_wide's ``factored_conv`` (1×3×3 then 3×1×1) and two 1×3×3 convs."""
    return [[width, 1, 3], [width, 3, 1], [width, 1, 3], [width, 1, 3]]


register_preset("ezm3d_m", EzM3D, titles=("ezm-3d-M",))
register_preset(
    "ezm3d_l",
    EzM3D,
    {
        "encoder": [_full(64, 64, 64), _full(128, 128, 128), _factored(256), _factored(512)],
        "bottleneck": _factored(512),
        "decoder": [
            [[512, 1, 3], [512, 3, 1], [512, 1, 3]],
            [[256, 1, 3], [256, 3, 1], [256, 1, 3]],
            _full(128, 128),
            _full(64, 64),
        ],
        "up_widths": [512, 256, 128, 64],
    },
    titles=("ezm-3d-L",),
)
