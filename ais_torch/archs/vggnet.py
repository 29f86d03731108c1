"""VGGNet: a VGG-style encoder and a decoder without skip connections (S, M, L, X).

One class, several sizes (the presets registered at the end of this module):

* encoder block i: ``len(encoder[i])`` x [Conv2D 3x3 relu (-> BatchNormalization if
  ``batch_norm``)] -> MaxPooling2D 2 (-> Dropout(``encoder_dropout[i]``) if > 0);
* decoder stage j: Conv2DTranspose 2x2 s2 ``decoder[j]`` (linear) -> Conv2D 3x3 relu
  ``decoder[j]`` (-> BN) (-> Dropout(``decoder_dropout``) if > 0);
* ``output_transpose`` (VGGNet S/M): one more Conv2DTranspose 2x2 s2 with 1 filter;
* head: Conv2D 1x1, 1 filter, sigmoid.

That list is also the Keras layer order, and the attribute order (``encoder``, ``decoder``,
``output_up``, ``head``), so Keras weights map in order. The number of up-sampling stages,
``len(decoder) + output_transpose``, must equal the number of pools ``len(encoder)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from ais_torch.archs.base import AisArch
from ais_torch.archs.layers import ConvReLU, ConvReLUBN, conv, conv_block, conv_transpose2x
from ais_torch.archs.presets import register_preset
from ais_torch.errors import ConfigError

if TYPE_CHECKING:
    from typing import Unpack

    from ais_torch.archs.base import CommonHparams
    from ais_torch.formats.keras.emit import KerasBuilder

VGGNET_M_ENCODER = ((128, 128), (256, 256), (512, 512))


class VGGNet(AisArch):
    """VGG encoder-decoder; the defaults are VGGNet M, the original's default architecture."""

    title = "VGGNet"

    def __init__(
        self,
        *,
        encoder: Sequence[Sequence[int]] = VGGNET_M_ENCODER,
        decoder: Sequence[int] = (128, 64),
        output_transpose: bool = True,
        batch_norm: bool = False,
        encoder_dropout: Sequence[float] | float = 0.0,
        decoder_dropout: float = 0.0,
        **common: Unpack[CommonHparams],
    ) -> None:
        super().__init__(**common)
        if isinstance(encoder_dropout, int | float):
            encoder_dropout = [float(encoder_dropout)] * len(encoder)
        encoder_dropout = [float(p) for p in encoder_dropout]
        self.hparams["encoder_dropout"] = encoder_dropout  # recorded per block
        if len(encoder_dropout) != len(encoder):
            raise ConfigError("encoder_dropout needs one rate per encoder block")
        if not encoder or len(decoder) + int(output_transpose) != len(encoder):
            raise ConfigError(
                f"VGGNet: {len(encoder)} pools need as many up-sampling stages, got "
                f"{len(decoder)} decoder stages + output_transpose={output_transpose}"
            )
        self.min_size_multiple = 2 ** len(encoder)

        blocks: list[nn.Module] = []
        c = self.hparams.in_channels
        for widths, p in zip(encoder, encoder_dropout, strict=True):
            block = conv_block(c, widths, batch_norm)
            block.append(nn.MaxPool2d(2))
            if p > 0:
                block.append(nn.Dropout(p))
            blocks.append(block)
            c = widths[-1]
        self.encoder = nn.Sequential(*blocks)

        stages: list[nn.Module] = []
        for w in decoder:
            stage = nn.Sequential(conv_transpose2x(c, w))
            stage.append(ConvReLUBN(w, w) if batch_norm else ConvReLU(w, w))
            if decoder_dropout > 0:
                stage.append(nn.Dropout(decoder_dropout))
            stages.append(stage)
            c = w
        self.decoder = nn.Sequential(*stages)
        self.output_up = conv_transpose2x(c, 1) if output_transpose else nn.Identity()
        self.head = conv(1 if output_transpose else c, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._should_check():
            self.check_input_shape(x)
        x = self.output_up(self.decoder(self.encoder(x)))
        return torch.sigmoid(self.head(x))

    def keras_graph(self, b: KerasBuilder, x: str) -> str:
        """The original's VGGNet ``create()``, replayed on these modules."""
        x = b.sequence(b.sequence(b.sequence(x, self.encoder), self.decoder), self.output_up)
        return b.conv(x, self.head, "sigmoid", padding="valid")


_DEEP = {"batch_norm": True, "output_transpose": False}  # VGGNet L and X (original >= 1.0.43)
register_preset(
    "vggnet_s",
    VGGNet,
    {"encoder": [[64, 64], [128, 128], [256, 256]]},
    titles=("VGGNet S", "VGGNet"),
)
# VGGNet M is the class default and the default architecture of ais_torch (DEFAULT_PRESET)
register_preset("vggnet_m", VGGNet, titles=("VGGNet M", "VGGNet double"))
register_preset(
    "vggnet_l",
    VGGNet,
    {
        "encoder": [[128, 128], [256, 256], [512, 512], [1024, 1024]],
        "decoder": [1024, 512, 256, 128],
        "encoder_dropout": [0.0, 0.0, 0.0, 0.25],
        **_DEEP,
    },
    titles=("VGGNet L",),
    n_parameters=38_239_489,
)
# VGGNet L as the original 1.0.36-1.0.43 built it, under the same title
register_preset(
    "vggnet_l_v1",
    VGGNet,
    {
        "encoder": [[128, 128], [256, 256], [512, 512], [512, 512]],
        "decoder": [512, 512, 256, 128],
        "encoder_dropout": [0.25, 0.25, 0.25, 0.25],
        "decoder_dropout": 0.25,
        **_DEEP,
    },
    titles=("VGGNet L",),
    n_parameters=17_521_921,
)
register_preset(
    "vggnet_x",
    VGGNet,
    {
        "encoder": [[64, 64], [128, 128], [256, 256], [512, 512], [1024, 1024]],
        "decoder": [1024, 512, 256, 128, 64],
        "encoder_dropout": [0.0, 0.0, 0.0, 0.0, 0.25],
        **_DEEP,
    },
    titles=("VGGNet X",),
)
