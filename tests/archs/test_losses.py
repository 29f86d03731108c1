"""Masked losses: label 2 is ignored; otherwise they are the ordinary per-pixel losses."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ais_torch.archs import losses
from ais_torch.errors import ConfigError


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    probs = torch.rand(2, 1, 8, 8, generator=g) * 0.98 + 0.01
    labels = (torch.rand(2, 1, 8, 8, generator=g) > 0.5).float()
    return probs, labels


def test_bce_without_ignored_pixels_is_plain_bce() -> None:
    probs, labels = batch()
    expected = F.binary_cross_entropy(probs, labels)
    assert torch.allclose(losses.masked_bce(probs, labels), expected, atol=1e-5)


def test_bce_ignores_label_2_in_value_and_gradient() -> None:
    probs, labels = batch()
    labels[:, :, :3] = 2.0
    probs = probs.clone().requires_grad_(True)
    loss = losses.masked_bce(probs, labels)
    loss.backward()
    assert torch.count_nonzero(probs.grad[:, :, :3]) == 0
    kept = labels != 2
    expected = F.binary_cross_entropy(probs[kept], labels[kept])
    assert torch.allclose(loss, expected, atol=1e-5)
    other = probs.detach().clone()
    other[:, :, :3] = 0.5
    assert torch.allclose(losses.masked_bce(other, labels), loss)


def test_bce_is_finite_on_saturated_predictions() -> None:
    probs = torch.tensor([0.0, 1.0]).reshape(1, 1, 1, 2)
    labels = torch.tensor([1.0, 0.0]).reshape(1, 1, 1, 2)
    loss = losses.masked_bce(probs, labels)
    assert torch.isfinite(loss) and loss > 10  # clipped like Keras: -log(2e-7) ~ 15.4


def test_dice_values() -> None:
    labels = torch.tensor([1.0, 1.0, 0.0, 2.0]).reshape(1, 1, 1, 4)
    perfect = torch.tensor([1.0, 1.0, 0.0, 1.0]).reshape(1, 1, 1, 4)  # the 2 is ignored
    assert losses.masked_dice(perfect, labels) == pytest.approx(0.0, abs=1e-6)
    half = torch.tensor([1.0, 0.0, 0.0, 0.0]).reshape(1, 1, 1, 4)
    assert losses.masked_dice(half, labels) == pytest.approx(1 - 2 / 3, abs=1e-5)
    all_ignored = torch.full((1, 1, 1, 4), 2.0)
    assert losses.masked_dice(half, all_ignored) == 0.0


def test_bce_dice_is_the_weighted_sum() -> None:
    probs, labels = batch()
    combined = losses.masked_bce_dice(0.3, 0.7)(probs, labels)
    expected = 0.3 * losses.masked_bce(probs, labels) + 0.7 * losses.masked_dice(probs, labels)
    assert torch.allclose(combined, expected)


def test_dice_score_is_hard_and_ignores_label_2() -> None:
    labels = torch.tensor([1.0, 1.0, 0.0, 2.0]).reshape(1, 1, 1, 4)
    probs = torch.tensor([0.9, 0.2, 0.1, 0.9]).reshape(1, 1, 1, 4)
    assert losses.dice_score(probs, labels) == pytest.approx(2 / 3)
    assert losses.dice_score(torch.zeros(1, 1, 1, 2), torch.zeros(1, 1, 1, 2)) == 1.0


def test_masked_l1_ignores_label_2() -> None:
    pred = torch.tensor([0.5, 0.0, 5.0]).reshape(1, 1, 1, 3)
    labels = torch.tensor([1.0, 0.0, 2.0]).reshape(1, 1, 1, 3)
    assert losses.masked_l1(pred, labels) == pytest.approx(0.25, abs=1e-5)


def test_unknown_loss_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="bce_dice"):
        losses.make_loss("focal")
    from ais_torch import archs

    with pytest.raises(ConfigError, match="unknown loss 'focal'"):
        archs.build("unet_s", loss="focal")
