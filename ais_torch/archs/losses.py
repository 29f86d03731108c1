"""Losses on per-pixel probabilities that ignore the label 2, as the original's HEAD library does.

Training labels are 0 (background), 1 (feature) and 2 ("ignore": e.g. pixels outside the
tomogram). Ignored pixels contribute neither to the value nor to the gradient. Without any 2s
each loss is the ordinary per-pixel one. Semantics follow the original (Keras): predictions are
clipped to [1e-7, 1 - 1e-7] for the BCE, the BCE is averaged over the kept pixels of the whole
batch (denominator + 1e-6), and Dice is one soft Dice over the whole batch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

IGNORE_LABEL = 2.0
KERAS_EPSILON = 1e-7  # tf.keras.backend.epsilon(): BCE clipping
MASK_EPSILON = 1e-6  # the original's losses.py: denominators

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def split_labels(target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(labels with 2 replaced by 0, float mask that is 0 where the label was 2)."""
    target = target.float()
    ignore = target == IGNORE_LABEL
    return torch.where(ignore, torch.zeros_like(target), target), (~ignore).float()


def masked_bce(probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of probabilities, averaged over the pixels whose label is not 2."""
    labels, mask = split_labels(target)
    p = probs.float().clamp(KERAS_EPSILON, 1.0 - KERAS_EPSILON)
    bce = -(labels * torch.log(p + KERAS_EPSILON) + (1 - labels) * torch.log(1 - p + KERAS_EPSILON))
    return (bce * mask).sum() / (mask.sum() + MASK_EPSILON)


def masked_dice(probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - soft Dice over the pixels whose label is not 2 (0 when every pixel is ignored)."""
    labels, mask = split_labels(target)
    p = probs.float() * mask
    t = labels * mask
    numerator = 2.0 * (t * p).sum() + MASK_EPSILON
    denominator = (t + p).sum() + MASK_EPSILON
    dice = torch.where(mask.sum() == 0, torch.ones_like(numerator), numerator / denominator)
    return 1.0 - dice


def masked_bce_dice(bce_weight: float = 0.1, dice_weight: float = 1.0) -> LossFn:
    """``bce_weight * masked_bce + dice_weight * masked_dice`` (defaults as in ezm-2d-dice)."""

    def loss(probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return bce_weight * masked_bce(probs, target) + dice_weight * masked_dice(probs, target)

    return loss


def masked_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over the pixels whose label is not 2 (Pix2pix's reconstruction term)."""
    labels, mask = split_labels(target)
    return ((pred.float() - labels).abs() * mask).sum() / (mask.sum() + MASK_EPSILON)


@torch.no_grad()
def dice_score(probs: torch.Tensor, target: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Hard Dice of ``probs > threshold`` against the labels, ignoring label 2.

    1.0 when neither prediction nor label has a foreground pixel (nothing to find, none found).
    """
    labels, mask = split_labels(target)
    pred = (probs.float() > threshold).float() * mask
    t = labels * mask
    denominator = pred.sum() + t.sum()
    if denominator == 0:
        return torch.ones((), device=probs.device)
    return 2.0 * (pred * t).sum() / denominator


LOSSES = ("bce", "dice", "bce_dice")


def make_loss(name: str, bce_weight: float = 0.1, dice_weight: float = 1.0) -> LossFn:
    """The training loss called ``name`` (one of :data:`LOSSES`)."""
    if name == "bce":
        return masked_bce
    if name == "dice":
        return masked_dice
    if name == "bce_dice":
        return masked_bce_dice(bce_weight, dice_weight)
    from ais_torch.errors import ConfigError

    raise ConfigError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
