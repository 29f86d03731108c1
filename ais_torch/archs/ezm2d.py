"""ezm-2d: the original's "easymode" 2D network, a deep UNet with three convs per level.

Topology (built by :class:`ais_torch.archs.unet.UNet`, same layer order as Keras): encoder levels
64, 128, 256, 512, each 3 x [Conv2D 3x3 relu -> BN], MaxPooling2D 2; bottleneck 3 x 1024 ->
Dropout 0.25; decoder Conv2DTranspose 2x2 s2 (512, 256, 128, 64) + concatenate skip + 2 x
[Conv2D 3x3 relu -> BN]; Conv2D 1x1 sigmoid. 43,634,689 parameters at one input channel.
The original trains it with Adam at 5e-5 and 0.1 x masked BCE + 1.0 x masked Dice
("ezm-2d-dice"; "ezm-2d-bxe" is the same network trained with masked BCE).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from ais_torch.archs.presets import register_preset
from ais_torch.archs.unet import UNet

if TYPE_CHECKING:
    from typing import Unpack

    from ais_torch.archs.base import CommonHparams


class EzM2D(UNet):
    """ezm-2d: a UNet whose defaults are the easymode 2D network and its training settings."""

    title = "ezm-2d"
    keras_concat_axis: ClassVar[int] = 3  # easymode_2d.py: concatenate(..., axis=3)

    def __init__(
        self,
        *,
        encoder: Sequence[Sequence[int]] = ((64,) * 3, (128,) * 3, (256,) * 3, (512,) * 3),
        bottleneck: Sequence[int] = (1024,) * 3,
        decoder: Sequence[Sequence[int]] = ((512, 512), (256, 256), (128, 128), (64, 64)),
        up_widths: Sequence[int] | None = (512, 256, 128, 64),
        batch_norm: bool = True,
        bottleneck_dropout: float = 0.25,
        learning_rate: float = 5e-5,
        loss: str = "bce_dice",
        **common: Unpack[CommonHparams],
    ) -> None:
        super().__init__(
            encoder=encoder,
            bottleneck=bottleneck,
            decoder=decoder,
            up_widths=up_widths,
            batch_norm=batch_norm,
            bottleneck_dropout=bottleneck_dropout,
            learning_rate=learning_rate,
            loss=loss,
            **common,
        )


# "ezm-2d-dice" is the class default; "ezm-2d-bxe" is the same network trained with masked BCE
register_preset("ezm2d", EzM2D, titles=("ezm-2d", "ezm-2d-dice"))
register_preset("ezm2d_bxe", EzM2D, {"loss": "bce"}, titles=("ezm-2d-bxe",))
