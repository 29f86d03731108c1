"""Augmented samples: counts, the copy plan, alignment, determinism, standardisation."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from ais_torch.errors import AisInputError, ConfigError
from ais_torch.formats.boxset import BoxSet
from ais_torch.segmentation.normalise import standardise
from ais_torch.segmentation.tta import dihedral
from ais_torch.training.sampling import BoxSamples, TrainingSamples

B = 32


def _boxes(n_pos: int, n_neg: int, depth: int = 1, seed: int = 0) -> BoxSet:
    """Positives hold a bright asymmetric L (label 1 exactly there); negatives are noise."""
    rng = np.random.default_rng(seed)
    n = n_pos + n_neg
    images = rng.normal(0.0, 0.1, size=(n, depth, B, B)).astype(np.float32)
    labels = np.zeros((n, B, B), np.uint8)
    for i in range(n_pos):
        for arr, value in ((images[i, :], 5.0), (labels[i], 1)):
            arr[..., 6:26, 8:12] = value
            arr[..., 22:26, 12:20] = value
    labels[:, :2, :] = 2  # a strip of ignore, as at a tomogram edge
    return BoxSet(images, labels, 10.0, "Membrane")


@pytest.mark.parametrize(("n_copies", "excess"), [(10, 30.0), (4, 0.0), (1, 100.0)])
def test_sample_counts_follow_copies_and_negative_excess(n_copies: int, excess: float) -> None:
    ds = TrainingSamples(_boxes(6, 5), n_copies=n_copies, excess_negative=excess)
    assert ds.n_positive_samples == 6 * n_copies
    assert ds.n_negative_samples == round((1 + excess / 100) * n_copies * 6)
    assert len(ds) == ds.n_positive_samples + ds.n_negative_samples


def test_positive_copies_are_the_dihedral_transforms_then_rotations() -> None:
    boxes = _boxes(2, 3)
    ds = TrainingSamples(boxes, n_copies=10, seed=1)
    for box in range(2):
        plans = [ds.plan(box * 10 + c) for c in range(10)]
        assert [p[0] for p in plans] == [box] * 10
        assert [(kind, int(k)) for _, kind, k in plans[:8]] == [("dihedral", k) for k in range(8)]
        assert all(kind == "rotate" and 0 <= a < 360 for _, kind, a in plans[8:])
        x, y = ds[box * 10 + 5]
        np.testing.assert_array_equal(x.numpy(), standardise(dihedral(boxes.images[box], 5)))
        np.testing.assert_array_equal(y[0].numpy(), dihedral(boxes.labels[box], 5))


def test_negatives_are_cycled_evenly_with_random_dihedrals() -> None:
    ds = TrainingSamples(_boxes(3, 4), n_copies=10, excess_negative=30.0)
    neg = range(ds.n_positive_samples, len(ds))
    uses = Counter(ds.plan(i)[0] for i in neg)
    assert set(uses) == {3, 4, 5, 6} and max(uses.values()) - min(uses.values()) <= 1
    assert all(ds.plan(i)[1] == "dihedral" for i in neg)
    assert len({int(ds.plan(i)[2]) for i in neg}) > 1
    # fewer negative samples than boxes: a spread subset, not the first boxes in file order
    few = TrainingSamples(_boxes(1, 40), n_copies=2, excess_negative=0.0)
    picked = [few.plan(i)[0] for i in range(few.n_positive_samples, len(few))]
    assert len(set(picked)) == 2 and picked != [1, 2]


def test_without_positives_each_negative_box_gives_n_copies() -> None:
    ds = TrainingSamples(_boxes(0, 5), n_copies=3)
    assert (ds.n_positive_samples, ds.n_negative_samples) == (0, 15)
    with pytest.raises(AisInputError, match="no training boxes"):
        TrainingSamples(_boxes(0, 0))


def test_without_negatives_there_are_only_positive_samples() -> None:
    ds = TrainingSamples(_boxes(2, 0), n_copies=4)
    assert (ds.n_positive_samples, ds.n_negative_samples) == (8, 0)


def test_every_sample_is_aligned_standardised_and_typed() -> None:
    ds = TrainingSamples(_boxes(3, 2, depth=3), n_copies=12, seed=3)
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.shape == (3, B, B) and y.shape == (1, B, B)
        assert x.dtype == torch.float32 and y.dtype == torch.float32
        assert abs(float(x.mean())) < 1e-4 and float(x.std(unbiased=False)) == pytest.approx(
            1, abs=1e-3
        )
        assert set(torch.unique(y).tolist()) <= {0.0, 1.0, 2.0}
        if i < ds.n_positive_samples:
            bright, feature = x[1] > x[1].mean() + x[1].std(), y[0] == 1
            iou = float((bright & feature).sum()) / float((bright | feature).sum())
            assert iou > (0.999 if ds.plan(i)[1] == "dihedral" else 0.8)


def test_same_seed_same_samples_other_seed_other_plan() -> None:
    boxes = _boxes(3, 6)
    a, b = TrainingSamples(boxes, seed=7), TrainingSamples(boxes, seed=7)
    for i in (0, 9, 25, len(a) - 1):
        torch.testing.assert_close(a[i], b[i], rtol=0, atol=0)
    c = TrainingSamples(boxes, seed=8)
    assert [a.plan(i) for i in range(len(a))] != [c.plan(i) for i in range(len(c))]


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        TrainingSamples(_boxes(1, 1), n_copies=0)
    with pytest.raises(ConfigError):
        TrainingSamples(_boxes(1, 1), excess_negative=-5)


def test_validation_samples_are_every_box_once_untransformed() -> None:
    boxes = _boxes(2, 3)
    ds = BoxSamples(boxes)
    assert len(ds) == 5
    x, y = ds[0]
    np.testing.assert_array_equal(x.numpy(), standardise(boxes.images[0]))
    np.testing.assert_array_equal(y[0].numpy(), boxes.labels[0])
