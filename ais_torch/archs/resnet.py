"""ResNet: residual blocks at full resolution, no down-sampling, then a 1x1 sigmoid conv.

Keras layer order per block (weights map in this order): Conv2D 3x3 (linear) -> Conv2D 3x3
(linear) on the main path, then the shortcut Conv2D 1x1 (linear) of the block input;
Add(shortcut, main) -> ReLU. Attributes ``conv1``, ``conv2``, ``shortcut`` follow that order.
The original library ships four blocks (32, 64, 128, 256: 1,215,457 parameters); the paper's
Table 1 network had a fifth block of 512 (4,887,265 parameters): ``widths`` selects either.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from ais_torch.archs.base import AisArch
from ais_torch.archs.layers import conv
from ais_torch.archs.presets import register_preset
from ais_torch.errors import ConfigError

if TYPE_CHECKING:
    from typing import Unpack

    from ais_torch.archs.base import CommonHparams
    from ais_torch.formats.keras.emit import KerasBuilder


class ResidualBlock(nn.Module):
    """relu(conv1x1(x) + conv3x3(conv3x3(x))), all convolutions linear."""

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        self.conv1 = conv(in_channels, width, 3)
        self.conv2 = conv(width, width, 3)
        self.shortcut = conv(in_channels, width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.shortcut(x) + self.conv2(self.conv1(x)))


class ResNet(AisArch):
    """Residual CNN (the original's ``Ais/models/resnet.py``)."""

    title = "ResNet"
    min_size_multiple = 1

    def __init__(
        self, *, widths: Sequence[int] = (32, 64, 128, 256), **common: Unpack[CommonHparams]
    ) -> None:
        super().__init__(**common)
        if not widths:
            raise ConfigError("ResNet needs at least one block width")
        blocks = []
        c = self.hparams.in_channels
        for w in widths:
            blocks.append(ResidualBlock(c, w))
            c = w
        self.blocks = nn.Sequential(*blocks)
        self.head = conv(c, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._should_check():
            self.check_input_shape(x)
        return torch.sigmoid(self.head(self.blocks(x)))

    def keras_graph(self, b: KerasBuilder, x: str) -> str:
        """The original's ``resnet.py`` ``create()``, replayed on these modules."""
        for block in self.blocks:
            main = b.conv(b.conv(x, block.conv1, "linear"), block.conv2, "linear")
            shortcut = b.conv(x, block.shortcut, "linear")
            x = b.activation(b.add([shortcut, main]), "relu")
        return b.conv(x, self.head, "sigmoid", padding="valid")


# the library's 4 blocks (class default) and the paper's 5; the title "ResNet" meant both
register_preset("resnet", ResNet, titles=("ResNet",), n_parameters=1_215_457)
register_preset(
    "resnet_paper",
    ResNet,
    {"widths": [32, 64, 128, 256, 512]},
    titles=("ResNet",),
    n_parameters=4_887_265,
)
