"""The one segmentation Dice: thresholds the prediction, reads any nonzero truth as the feature."""

from __future__ import annotations

import numpy as np
import pytest

from ais_torch.evaluation.metrics import dice, dice_iou


def test_dice_thresholds_prediction_and_takes_nonzero_truth() -> None:
    prediction = np.array([0.9, 0.6, 0.5, 0.2, 0.7])
    truth = np.array([1, 3, 1, 0, 0])  # label values other than 1 still count
    # prediction > 0.5 → [1, 1, 0, 0, 1]; truth > 0 → [1, 1, 1, 0, 0]: 2 · 2 / (3 + 3)
    assert dice(prediction, truth) == pytest.approx(2 / 3)
    assert dice(prediction, truth, threshold=0.65) == pytest.approx(2 * 1 / (2 + 3))
    assert dice(np.array([200, 10], np.uint8), np.array([1, 0]), threshold=128) == 1.0


def test_dice_of_two_empty_volumes_is_one() -> None:
    assert dice(np.zeros((4, 4)), np.zeros((4, 4), np.uint8)) == 1.0
    assert dice(np.zeros(3), np.ones(3)) == 0.0


def test_dice_agrees_with_dice_iou() -> None:
    rng = np.random.default_rng(0)
    prediction, truth = rng.random((6, 7, 8)), rng.random((6, 7, 8)) > 0.7
    assert dice(prediction, truth, 0.4) == dice_iou(prediction > 0.4, truth)[0]
    with pytest.raises(ValueError, match="shapes differ"):
        dice(np.zeros(3), np.zeros(4))
