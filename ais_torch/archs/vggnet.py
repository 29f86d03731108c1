"""VGGNet: a VGG-style encoder and a decoder without skip connections (S, M, L, X).

One class, several sizes (presets in :mod:`ais_torch.archs.presets`):

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
from typing import Any

import torch
from torch import nn

from ais_torch.archs.base import AisArch
from ais_torch.archs.layers import ConvReLU, ConvReLUBN, conv, conv_block, conv_transpose2x
from ais_torch.errors import ConfigError

VGGNET_M_ENCODER = ((128, 128), (256, 256), (512, 512))


class VGGNet(AisArch):
    """VGG encoder-decoder; the defaults are VGGNet M, the original's default architecture."""

    title = "VGGNet"
    keras_titles = ("VGGNet S", "VGGNet M", "VGGNet L", "VGGNet X", "VGGNet", "VGGNet double")

    def __init__(
        self,
        *,
        encoder: Sequence[Sequence[int]] = VGGNET_M_ENCODER,
        decoder: Sequence[int] = (128, 64),
        output_transpose: bool = True,
        batch_norm: bool = False,
        encoder_dropout: Sequence[float] | float = 0.0,
        decoder_dropout: float = 0.0,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        encoder = self._plain_hparam("encoder", encoder)
        decoder = self._plain_hparam("decoder", decoder)
        if isinstance(encoder_dropout, int | float):
            encoder_dropout = [float(encoder_dropout)] * len(encoder)
        encoder_dropout = self._plain_hparam("encoder_dropout", encoder_dropout)
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
