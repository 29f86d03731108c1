"""The one threshold rule picking, meshes, evaluation and the viewer share."""

from __future__ import annotations

import numpy as np
import pytest

from ais_torch.errors import ConfigError
from ais_torch.formats.encoding import full_scale, threshold_on, user_probability

GREY = np.array([0, 200], np.uint16)  # `ais segment` output: uint8 grey levels in MRC mode 6


def test_probability_or_grey_level_on_each_encoding() -> None:
    assert threshold_on(GREY, 128) == 128
    assert threshold_on(GREY, 0.5) == 127.5
    assert threshold_on(np.zeros(3, np.float32), 128) == pytest.approx(128 / 255)
    assert threshold_on(np.zeros(3, np.float32), 0.25) == 0.25
    assert threshold_on(np.array([0, 200.0], np.float32), 128) == 128  # float holding grey
    assert threshold_on(np.array([0, 100], np.int8), 128) == 64  # the original's int8 rule


def test_label_masks_read_as_probabilities() -> None:
    """A 0/1 label file (any integer type) or a bool mask at threshold 0.5 keeps its 1s."""
    for mask in (np.array([0, 1], np.uint8), np.array([0, 1], np.int8), np.array([0, 1], bool)):
        assert full_scale(mask) == 1.0
        assert (mask > threshold_on(mask, 0.5)).tolist() == [False, True]


def test_one_means_probability_one() -> None:
    assert user_probability(1) == 1.0 and user_probability(1.5) == pytest.approx(1.5 / 255)


@pytest.mark.parametrize("bad", [-0.1, 256, float("nan"), "high"])
def test_values_outside_both_scales_name_the_key(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"^level=.*(0\.\.1|not a number)"):
        user_probability(bad, "level")  # type: ignore[arg-type]
