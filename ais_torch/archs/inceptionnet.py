"""InceptionNet: three inception modules at full resolution, then a 1x1 sigmoid conv.

Keras layer order per module (weights map in this order, module by module): the original
creates, from the module input, (a) Conv2D 1x1 relu; (b) Conv2D 1x1 relu -> Conv2D 3x3 relu;
(c) Conv2D 1x1 relu -> Conv2D 5x5 relu; (d) MaxPooling2D 3x3 stride 1 "same" -> Conv2D 1x1 relu;
and concatenates [a, b, c, d]. Attribute order below follows that creation order
(``a``, ``b_reduce``, ``b``, ``c_reduce``, ``c``, ``d``), then ``head`` (Conv2D 1x1 sigmoid).
The "same" max-pool pads with -inf, which is what ``nn.MaxPool2d(padding=1)`` does implicitly.
550,529 parameters (paper Table 1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from ais_torch.archs.base import AisArch
from ais_torch.archs.layers import conv
from ais_torch.archs.presets import register_preset

if TYPE_CHECKING:
    from typing import Unpack

    from ais_torch.archs.base import CommonHparams
    from ais_torch.formats.keras.emit import KerasBuilder


class InceptionModule(nn.Module):
    """Four parallel branches concatenated along channels (4 x ``filters`` out)."""

    def __init__(self, in_channels: int, filters: int) -> None:
        super().__init__()
        self.a = conv(in_channels, filters, 1)
        self.b_reduce = conv(in_channels, filters, 1)
        self.b = conv(filters, filters, 3)
        self.c_reduce = conv(in_channels, filters, 1)
        self.c = conv(filters, filters, 5)
        self.pool = nn.MaxPool2d(3, stride=1, padding=1)
        self.d = conv(in_channels, filters, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        relu = torch.relu
        a = relu(self.a(x))
        b = relu(self.b(relu(self.b_reduce(x))))
        c = relu(self.c(relu(self.c_reduce(x))))
        d = relu(self.d(self.pool(x)))
        return torch.cat([a, b, c, d], dim=1)


class InceptionNet(AisArch):
    """Three inception modules (64 filters per branch) and a 1x1 sigmoid head."""

    title = "InceptionNet"
    min_size_multiple = 1

    def __init__(
        self, *, filters: int = 64, n_modules: int = 3, **common: Unpack[CommonHparams]
    ) -> None:
        super().__init__(**common)
        c = self.hparams.in_channels
        blocks = []
        for _ in range(n_modules):
            blocks.append(InceptionModule(c, filters))
            c = 4 * filters
        self.blocks = nn.Sequential(*blocks)
        self.head = conv(c, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._should_check():
            self.check_input_shape(x)
        return torch.sigmoid(self.head(self.blocks(x)))

    def keras_graph(self, b: KerasBuilder, x: str) -> str:
        """The original's ``inceptionnet.py`` ``create()``, replayed on these modules."""
        for block in self.blocks:
            t1 = b.conv(x, block.a, "relu")
            t2 = b.conv(b.conv(x, block.b_reduce, "relu"), block.b, "relu")
            t3 = b.conv(b.conv(x, block.c_reduce, "relu"), block.c, "relu")
            t4 = b.conv(b.max_pool(x, block.pool), block.d, "relu")
            x = b.concatenate([t1, t2, t3, t4])
        return b.conv(x, self.head, "sigmoid", padding="same")


register_preset("inceptionnet", InceptionNet, titles=("InceptionNet",))
