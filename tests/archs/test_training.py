"""Training behaviour: optimiser settings, learning on a tiny batch, Pix2pix's GAN steps."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer
from torch.utils.data import DataLoader, TensorDataset

from ais_torch import archs
from ais_torch.archs import losses
from ais_torch.archs.testing import quiet_lightning, quiet_trainer_args, tiny_batch

# One network per architecture class; the presets only change sizes. UNet M stands for the
# BatchNorm + transposed-conv UNet path that ezm-2d (a UNet subclass) also takes.
LEARNERS = ["eman2", "inceptionnet", "resnet", "unet_s", "unet_m", "vggnet_s", "pix2pix"]

pytestmark = pytest.mark.filterwarnings("ignore:You defined a `validation_step`")


def fit(model, x: torch.Tensor, y: torch.Tensor, steps: int, root: Path) -> None:
    loader = DataLoader(TensorDataset(x, y), batch_size=len(x))
    with quiet_lightning():
        trainer = Trainer(**quiet_trainer_args(root), max_steps=steps, limit_val_batches=0)
        trainer.fit(model, train_dataloaders=loader)


def train_mode_loss(model, x: torch.Tensor, y: torch.Tensor) -> float:
    """The loss the model optimises; for Pix2pix the generator's L1 term (its BCE, the loss
    the original reports, can rise over the first steps while L1 and Dice improve)."""
    model.train()
    torch.manual_seed(0)  # same dropout masks before and after
    with torch.no_grad():
        probs = model(x)
        if not model.automatic_optimization:
            return losses.masked_l1(probs, y).item()
        return model.compute_loss(probs, y).item()


@pytest.mark.parametrize("name", LEARNERS)
def test_a_few_steps_lower_the_loss(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = archs.build(name, learning_rate=1e-3)
    x, y = tiny_batch(model, batch_size=4)
    x = x + 2 * (y == 1)  # make the labels learnable from the input
    before = train_mode_loss(model, x, y)
    fit(model, x, y, steps=8, root=tmp_path)
    after = train_mode_loss(model, x, y)
    assert after < before, f"{name}: loss {before:.4f} -> {after:.4f}"


def test_optimizer_is_keras_adam() -> None:
    model = archs.build("vggnet_m", learning_rate=2e-3)
    opt = model.configure_optimizers()
    assert isinstance(opt, torch.optim.Adam)
    group = opt.param_groups[0]
    assert group["lr"] == 2e-3 and group["betas"] == (0.9, 0.999) and group["eps"] == 1e-7


def test_ezm2d_trains_like_the_original() -> None:
    model = archs.build("ezm2d")
    assert model.hparams.learning_rate == 5e-5 and model.hparams.loss == "bce_dice"
    assert (model.hparams.bce_weight, model.hparams.dice_weight) == (0.1, 1.0)
    assert archs.build("ezm2d_bxe").hparams.loss == "bce"


def changed(before: list[torch.Tensor], after) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_pix2pix_uses_two_adams_and_steps_both_nets(tmp_path: Path) -> None:
    model = archs.build("pix2pix")
    assert model.automatic_optimization is False
    opt_g, opt_d = model.configure_optimizers()
    assert opt_g.param_groups[0]["lr"] == 2e-4 and opt_g.param_groups[0]["betas"] == (0.5, 0.999)
    assert {id(p) for p in opt_d.param_groups[0]["params"]} == {
        id(p) for p in model.discriminator.parameters()
    }
    gen = [p.detach().clone() for p in model.generator.parameters()]
    disc = [p.detach().clone() for p in model.discriminator.parameters()]
    x, y = tiny_batch(model)
    fit(model, x, y, steps=1, root=tmp_path)
    assert changed(gen, model.generator.parameters())
    assert changed(disc, model.discriminator.parameters())


def test_pix2pix_tanh_output_is_clamped_to_probabilities() -> None:
    model = archs.build("pix2pix_paper").eval()
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        raw = model.generator(x)
        probs = model(x)
    assert raw.min() < 0  # tanh output really goes negative ...
    assert torch.equal(probs, raw.clamp(0, 1))  # ... and forward clamps it


def test_pix2pix_discriminator_sees_patches() -> None:
    model = archs.build("pix2pix")
    with torch.no_grad():
        out = model.discriminator(torch.zeros(2, 2, 64, 96))
    assert out.shape == (2, 1, 4, 6)  # H/16 x W/16
