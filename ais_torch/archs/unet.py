"""UNet: encoder, bottleneck and a decoder with skip connections (UNet S, M, L; ezm-2d).

One class, several sizes (the presets registered at the end of this module):

* encoder level i: ``encoder[i]`` 3x3 relu convs (each -> BatchNormalization if
  ``batch_norm``), whose output is the skip; then MaxPooling2D 2;
* bottleneck: ``bottleneck`` 3x3 relu convs (-> BN), then Dropout(``bottleneck_dropout``);
* decoder stage j (deepest first): up-sample, concatenate [up-sampled, skip], then
  ``decoder[j]`` 3x3 relu convs (-> BN). Up-sampling is UpSampling2D (nearest) when
  ``up_widths`` is None (UNet S) or Conv2DTranspose 2x2 s2 with ``up_widths[j]`` filters;
* head: Conv2D 1x1, 1 filter, sigmoid.

That list is also the Keras layer order, and the attribute order (``encoder``, ``bottleneck``,
then per decoder stage ``stages[j].up`` and ``stages[j].convs``, then ``head``), so Keras
weights map in order.

UNet M (7,771,297 parameters in the original 1.2.40 library) is not in the paper. Its topology
was inferred from that exact count: the standard 4-level UNet with widths 32-64-128-256, a
2 x 512 bottleneck, Conv2DTranspose 2x2 up-sampling to 256/128/64/32 and conv relu -> BN
everywhere (UNet L's conventions) gives 7,771,297 exactly. Two independent sources agree: the
layer list of the reference kit's UNet M .scnm (51 Keras layers: conv/BN pairs, 4 pools, one
Dropout after the bottleneck, 4 transposed convs + concatenations, first BN of width 32) and
the original's ``unet_m.py`` (seen in the mgflast/Ais fork), whose bottleneck dropout of 0.25
we use (a rate does not show in a parameter count).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from ais_torch.archs.base import AisArch
from ais_torch.archs.layers import conv, conv_block, conv_transpose2x, upsample2x
from ais_torch.archs.presets import register_preset
from ais_torch.errors import ConfigError

if TYPE_CHECKING:
    from typing import Unpack

    from ais_torch.archs.base import CommonHparams
    from ais_torch.formats.keras.emit import KerasBuilder


class UpStage(nn.Module):
    """Up-sample, concatenate [up, skip], convolve: one decoder stage."""

    def __init__(self, up: nn.Module, convs: nn.Module) -> None:
        super().__init__()
        self.up = up
        self.convs = convs

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.convs(torch.cat([self.up(x), skip], dim=1))


class UNet(AisArch):
    """U-Net with configurable depth and widths; the defaults are UNet S (the paper's UNet)."""

    title = "UNet"
    keras_concat_axis: ClassVar[int] = -1  # the skip concatenation's axis as the original wrote it

    def __init__(
        self,
        *,
        encoder: Sequence[Sequence[int]] = ((64,), (128,)),
        bottleneck: Sequence[int] = (256,),
        decoder: Sequence[Sequence[int]] = ((128,), (64,)),
        up_widths: Sequence[int] | None = None,
        batch_norm: bool = False,
        bottleneck_dropout: float = 0.0,
        **common: Unpack[CommonHparams],
    ) -> None:
        super().__init__(**common)
        if not encoder or not bottleneck or len(decoder) != len(encoder):
            raise ConfigError(
                f"UNet: need >= 1 encoder level, a bottleneck and one decoder stage per level; "
                f"got {len(encoder)} levels, {len(decoder)} decoder stages"
            )
        if up_widths is not None and len(up_widths) != len(decoder):
            raise ConfigError("UNet: up_widths needs one width per decoder stage")
        if any(not convs for convs in [*encoder, *decoder]):
            raise ConfigError("UNet: every encoder level and decoder stage needs >= 1 conv")
        self.min_size_multiple = 2 ** len(encoder)

        levels: list[nn.Module] = []
        skips: list[int] = []
        c = self.hparams.in_channels
        for widths in encoder:
            levels.append(conv_block(c, widths, batch_norm))
            c = widths[-1]
            skips.append(c)
        self.encoder = nn.ModuleList(levels)
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = conv_block(c, bottleneck, batch_norm)
        c = bottleneck[-1]
        if bottleneck_dropout > 0:
            self.bottleneck.append(nn.Dropout(bottleneck_dropout))

        stages: list[nn.Module] = []
        for j, widths in enumerate(decoder):
            if up_widths is None:
                up: nn.Module = upsample2x()
            else:
                up = conv_transpose2x(c, up_widths[j])
                c = up_widths[j]
            c += skips[-1 - j]
            stages.append(UpStage(up, conv_block(c, widths, batch_norm)))
            c = widths[-1]
        self.stages = nn.ModuleList(stages)
        self.head = conv(c, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._should_check():
            self.check_input_shape(x)
        skips = []
        for level in self.encoder:
            x = level(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for stage, skip in zip(self.stages, reversed(skips), strict=True):
            x = stage(x, skip)
        return torch.sigmoid(self.head(x))

    def keras_graph(self, b: KerasBuilder, x: str) -> str:
        """The original's UNet ``create()`` (and easymode's), replayed on these modules."""
        skips = []
        for level in self.encoder:
            x = b.sequence(x, level)
            skips.append(x)
            x = b.max_pool(x, self.pool)
        x = b.sequence(x, self.bottleneck)
        for stage, skip in zip(self.stages, reversed(skips), strict=True):
            up = b.sequence(x, stage.up)
            x = b.sequence(b.concatenate([up, skip], self.keras_concat_axis), stage.convs)
        return b.conv(x, self.head, "sigmoid", padding="valid")


# UNet S is the class default (the paper's "UNet"; older originals called it "UNet", "UNet deep")
register_preset("unet_s", UNet, titles=("UNet S", "UNet", "UNet deep"))
register_preset(
    "unet_m",
    UNet,
    {
        "encoder": [[32, 32], [64, 64], [128, 128], [256, 256]],
        "bottleneck": [512, 512],
        "decoder": [[256, 256], [128, 128], [64, 64], [32, 32]],
        "up_widths": [256, 128, 64, 32],
        "batch_norm": True,
        "bottleneck_dropout": 0.25,
    },
    titles=("UNet M",),
)
register_preset(
    "unet_l",
    UNet,
    {
        "encoder": [[64, 64], [128, 128], [256, 512], [512, 512]],
        "bottleneck": [1024, 1024],
        "decoder": [[512, 512], [512, 512], [128, 128], [64, 64]],
        "up_widths": [512, 512, 128, 64],
        "batch_norm": True,
        "bottleneck_dropout": 0.5,
    },
    titles=("UNet L",),
)
