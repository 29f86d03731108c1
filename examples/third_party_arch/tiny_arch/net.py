"""TinyNet: the smallest useful ais_torch architecture, as a template for plugins."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from ais_torch.archs import AisArch, register_preset

if TYPE_CHECKING:
    from typing import Unpack

    from ais_torch.archs.base import CommonHparams
    from ais_torch.formats.keras.emit import KerasBuilder


class TinyNet(AisArch):
    """Two convolutions: 3x3 relu, then 1x1 sigmoid. Any box size works."""

    title = "TinyNet"  # shown to users, like the original's model titles
    min_size_multiple = 1  # no down-sampling, so H and W may be anything

    def __init__(self, *, width: int = 8, **common: Unpack[CommonHparams]) -> None:
        # Keyword-only hyperparameters of plain JSON types; AisArch records them all
        # (save_hyperparameters), so checkpoints reload with weights_only=True.
        super().__init__(**common)
        self.conv = nn.Conv2d(self.hparams.in_channels, width, 3, padding=1)
        self.head = nn.Conv2d(width, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C, H, W) boxes -> (B, 1, H, W) probabilities in [0, 1]
        return torch.sigmoid(self.head(torch.relu(self.conv(x))))

    def keras_graph(self, builder: KerasBuilder, x: str) -> str:
        # Optional: the same network as Keras layers, so `ais-torch export` can write a .scnm
        # the original Ais opens. Leave it out and Keras export says the model has no twin.
        return builder.conv(builder.conv(x, self.conv, "relu"), self.head, "sigmoid")


# Optional: named sizes, built like entry points (archs.build("tiny_net_wide"), arch=plugin
# arch.name=tiny_net_wide); only what differs from the class defaults.
register_preset("tiny_net_wide", TinyNet, {"width": 32})
