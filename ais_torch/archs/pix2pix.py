"""Pix2pix: a U-Net generator trained against a PatchGAN discriminator (adapted by the original
from Keras-GAN). Only the generator is the segmentation model; ``forward`` runs it.

Generator, in Keras layer order (attribute order ``generator.down``, ``generator.up``,
``generator.out``):

* down block i: Conv2D 4x4 stride 2 "same" (linear) -> LeakyReLU(0.2) -> BatchNormalization
  (Keras momentum 0.8 = PyTorch 0.2; skipped on the first block unless ``first_batch_norm``);
* up block j: UpSampling2D 2 -> Conv2D 4x4 stride 1 "same" relu -> BN(0.8) -> concatenate
  [up, mirrored down block]; widths are ``down_widths[:-1]`` reversed;
* UpSampling2D 2 -> Conv2D 4x4 "same", 1 filter, ``output_activation``.

The 4x4 "same" convs pad asymmetrically like TensorFlow (stride 1: 1 before, 2 after).
Discriminator (``discriminator``): concatenate [target, input] -> Conv2D 4x4 s2 + LeakyReLU
(+ BN(0.8) except the first) for ``disc_widths`` -> Conv2D 4x4 s1, 1 filter (linear); its
output is a patch map of H/16 x W/16.

Two variants (presets): the paper's (Table 1: 6 down blocks incl. BN on the first, tanh,
29,249,409 generator parameters) and the original 1.2.40 library's (5 down blocks, no BN on the
first, sigmoid, 16,661,121: the only 5/6-block, BN-on/off combination with that exact count,
and what the original's later ``pix2pix.py`` builds). The original counts the generator only;
so does ``n_parameters``.

Probabilities from ``forward``: sigmoid output as is; tanh output clamped to [0, 1]. The
original turns the tanh output into a segmentation by clipping to [0, 1] and scaling by 255,
so the clamp gives the same segmentation (negative values mean "background").

Training (manual optimisation, both nets Adam(lr, beta1 0.5)): discriminator LSGAN loss
0.5 * (MSE(D(real), 1) + MSE(D(fake), 0)); generator MSE(D(fake), 1) + ``l1_weight`` x L1.
As in the 1.2.40 library, ignored pixels (label 2) are left out of the L1 term and are shown to
the discriminator as background. ``train/loss`` and ``val/loss`` are the configured
segmentation loss of the probabilities (what the original reports as "loss").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ais_torch.archs import losses
from ais_torch.archs.base import KERAS_ADAM_EPS, AisArch, count_params_keras
from ais_torch.archs.layers import Conv2dSame, batch_norm, upsample2x
from ais_torch.archs.presets import register_preset
from ais_torch.errors import ConfigError

if TYPE_CHECKING:
    from typing import Unpack

    from lightning.pytorch.utilities.types import OptimizerLRScheduler

    from ais_torch.archs.base import CommonHparams
    from ais_torch.formats.keras.emit import KerasBuilder

PIX2PIX_BN_MOMENTUM = 0.2  # Keras BatchNormalization(momentum=0.8)
ACTIVATIONS = ("sigmoid", "tanh")


class DownBlock(nn.Sequential):
    """Conv 4x4 stride 2 -> LeakyReLU(0.2) (-> BN momentum 0.8)."""

    def __init__(self, in_channels: int, out_channels: int, bn: bool) -> None:
        super().__init__()
        self.conv = Conv2dSame(in_channels, out_channels, 4, stride=2)
        self.act = nn.LeakyReLU(0.2)
        if bn:
            self.bn = batch_norm(out_channels, momentum=PIX2PIX_BN_MOMENTUM)


class UpBlock(nn.Module):
    """Upsample x2 -> conv 4x4 relu -> BN(0.8) -> concatenate with the skip."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = upsample2x()
        self.conv = Conv2dSame(in_channels, out_channels, 4)
        self.bn = batch_norm(out_channels, momentum=PIX2PIX_BN_MOMENTUM)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.bn(torch.relu(self.conv(self.up(x)))), skip], dim=1)


class Generator(nn.Module):
    """U-Net generator; returns the raw output activation (sigmoid or tanh)."""

    def __init__(
        self, in_channels: int, down_widths: list[int], first_batch_norm: bool, activation: str
    ) -> None:
        super().__init__()
        self.activation = activation
        down = []
        c = in_channels
        for i, w in enumerate(down_widths):
            down.append(DownBlock(c, w, bn=first_batch_norm or i > 0))
            c = w
        self.down = nn.ModuleList(down)
        up = []
        for w in down_widths[-2::-1]:  # mirrors the down blocks; the skip has width w too
            up.append(UpBlock(c, w))
            c = 2 * w
        self.up = nn.ModuleList(up)
        self.out_up = upsample2x()
        self.out = Conv2dSame(c, 1, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
        skips.pop()  # the bottleneck is not a skip
        for block in self.up:
            x = block(x, skips.pop())
        x = self.out(self.out_up(x))
        return torch.tanh(x) if self.activation == "tanh" else torch.sigmoid(x)


class Discriminator(nn.Sequential):
    """PatchGAN: [target, input] -> one realness score per 16x16 patch (linear output)."""

    def __init__(self, in_channels: int, widths: list[int]) -> None:
        super().__init__()
        c = in_channels
        for i, w in enumerate(widths):
            self.add_module(f"block{i}", DownBlock(c, w, bn=i > 0))
            c = w
        self.add_module("out", Conv2dSame(c, 1, 4))


class Pix2pix(AisArch):
    """Conditional GAN for segmentation; defaults are the original 1.2.40 library's network."""

    title = "Pix2pix"
    keras_input_batch: ClassVar[int | None] = None  # the original saves the generator as built

    def __init__(
        self,
        *,
        down_widths: Sequence[int] = (64, 128, 256, 512, 512),
        first_batch_norm: bool = False,
        output_activation: str = "sigmoid",
        disc_widths: Sequence[int] = (64, 128, 256, 512),
        l1_weight: float = 100.0,
        beta1: float = 0.5,
        learning_rate: float = 2e-4,
        **common: Unpack[CommonHparams],
    ) -> None:
        super().__init__(learning_rate=learning_rate, **common)
        if output_activation not in ACTIVATIONS:
            raise ConfigError(f"output_activation must be one of {ACTIVATIONS}")
        if len(down_widths) < 2 or not disc_widths:
            raise ConfigError("Pix2pix needs >= 2 down blocks and >= 1 discriminator block")
        self.automatic_optimization = False
        self.min_size_multiple = 2 ** max(len(down_widths), len(disc_widths))
        c = self.hparams.in_channels
        self.generator = Generator(c, down_widths, first_batch_norm, output_activation)
        self.discriminator = Discriminator(c + 1, disc_widths)

    @property
    def n_parameters(self) -> int:
        """Generator parameters only, as the original's ``count_params``."""
        return count_params_keras(self.generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._should_check():
            self.check_input_shape(x)
        out = self.generator(x)
        return out.clamp(0.0, 1.0) if self.hparams.output_activation == "tanh" else out

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        x, y = batch
        opt_g, opt_d = self.optimizers()
        labels, _ = losses.split_labels(y)
        fake = self.generator(x)

        self.toggle_optimizer(opt_d)
        d_real = self.discriminator(torch.cat([labels, x], dim=1))
        d_fake = self.discriminator(torch.cat([fake.detach(), x], dim=1))
        d_loss = 0.5 * (
            F.mse_loss(d_real, torch.ones_like(d_real))
            + F.mse_loss(d_fake, torch.zeros_like(d_fake))
        )
        opt_d.zero_grad()
        self.manual_backward(d_loss)
        opt_d.step()
        self.untoggle_optimizer(opt_d)

        self.toggle_optimizer(opt_g)
        d_fake = self.discriminator(torch.cat([fake, x], dim=1))
        adversarial = F.mse_loss(d_fake, torch.ones_like(d_fake))
        g_loss = adversarial + self.hparams.l1_weight * losses.masked_l1(fake, y)
        opt_g.zero_grad()
        self.manual_backward(g_loss)
        opt_g.step()
        self.untoggle_optimizer(opt_g)

        with torch.no_grad():
            probs = fake.clamp(0.0, 1.0)
            loss = self.compute_loss(probs, y)
        n = len(x)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=n)
        self.log_dict({"train/g_loss": g_loss, "train/d_loss": d_loss}, batch_size=n)
        return loss

    def configure_optimizers(self) -> OptimizerLRScheduler:
        """Adam(lr, beta1 0.5) for the generator and for the discriminator (in that order)."""
        betas = (self.hparams.beta1, 0.999)
        lr = self.hparams.learning_rate
        return [
            torch.optim.Adam(self.generator.parameters(), lr=lr, betas=betas, eps=KERAS_ADAM_EPS),
            torch.optim.Adam(
                self.discriminator.parameters(), lr=lr, betas=betas, eps=KERAS_ADAM_EPS
            ),
        ]

    def keras_graph(self, b: KerasBuilder, x: str) -> str:
        """The original's Pix2pix generator ``create()``, replayed on these modules."""
        g = self.generator
        skips = []
        for block in g.down:
            x = b.leaky_relu(b.conv(x, block.conv, "linear"), block.act)
            if hasattr(block, "bn"):
                x = b.batch_norm(x, block.bn)
            skips.append(x)
        skips.pop()  # the bottleneck is no skip
        for block in g.up:
            u = b.batch_norm(b.conv(b.up_sampling(x, block.up), block.conv, "relu"), block.bn)
            x = b.concatenate([u, skips.pop()])
        return b.conv(b.up_sampling(x, g.out_up), g.out, g.activation)


# the 1.2.40 library's generator (class default) and the paper's; the title meant both
register_preset("pix2pix", Pix2pix, titles=("Pix2pix",), n_parameters=16_661_121)
register_preset(
    "pix2pix_paper",
    Pix2pix,
    {
        "down_widths": [64, 128, 256, 512, 512, 512],
        "first_batch_norm": True,
        "output_activation": "tanh",
    },
    titles=("Pix2pix",),
    n_parameters=29_249_409,
)
