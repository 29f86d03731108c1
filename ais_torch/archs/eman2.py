"""The EMAN2-style network: three large 15x15 convolutions at half resolution.

Keras layer order (weights map in this order): ``conv1`` Conv2D 15x15x40 relu -> MaxPooling2D 2
-> ``conv2`` Conv2D 15x15x40 relu -> ``conv3`` Conv2D 15x15x1 sigmoid -> UpSampling2D 2.
The prediction is made at half resolution and nearest-upsampled, so the output is blocky (2x2),
exactly as in the original. 378,081 parameters (paper Table 1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from ais_torch.archs.base import AisArch
from ais_torch.archs.layers import conv, upsample2x
from ais_torch.archs.presets import register_preset

if TYPE_CHECKING:
    from typing import Unpack

    from ais_torch.archs.base import CommonHparams
    from ais_torch.formats.keras.emit import KerasBuilder


class Eman2(AisArch):
    """EMAN2-like three-layer CNN (the original's ``Ais/models/eman2.py``)."""

    title = "Eman2"
    min_size_multiple = 2

    def __init__(
        self, *, filters: int = 40, kernel_size: int = 15, **common: Unpack[CommonHparams]
    ) -> None:
        super().__init__(**common)
        c = self.hparams.in_channels
        self.conv1 = conv(c, filters, kernel_size)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = conv(filters, filters, kernel_size)
        self.conv3 = conv(filters, 1, kernel_size)
        self.up = upsample2x()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._should_check():
            self.check_input_shape(x)
        x = self.pool(torch.relu(self.conv1(x)))
        x = torch.relu(self.conv2(x))
        return self.up(torch.sigmoid(self.conv3(x)))

    def keras_graph(self, b: KerasBuilder, x: str) -> str:
        """The original's ``eman2.py`` ``create()``, replayed on these modules."""
        x = b.max_pool(b.conv(x, self.conv1, "relu"), self.pool)
        x = b.conv(b.conv(x, self.conv2, "relu"), self.conv3, "sigmoid")
        return b.up_sampling(x, self.up)


register_preset("eman2", Eman2, titles=("Eman2",))
