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
from ais_torch.training.sampling import (
    BoxSamples,
    DihedralSamples,
    PerBatchSampler,
    TrainingSamples,
)

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


# -- sampling="per_batch": the original Ais 1.2.x's stream ------------------------------------


def _per_batch(boxes: BoxSet, batch: int = 4, copies: int = 3, seed: int = 0) -> PerBatchSampler:
    return PerBatchSampler(DihedralSamples(boxes), batch, copies, seed=seed)


def test_per_batch_epoch_length_is_copies_times_boxes_over_batch() -> None:
    sampler = _per_batch(_boxes(3, 9), batch=4, copies=3)
    assert sampler.n_batches == 3 * (12 // 4)
    assert len(list(sampler)) == len(sampler) == 9 * 4
    assert _per_batch(_boxes(1, 2), batch=8, copies=2).n_batches == 2  # fewer boxes than a batch


def test_per_batch_leads_every_batch_with_a_positive_and_draws_the_rest_from_all() -> None:
    boxes = _boxes(2, 18)  # positives rare: only the batch starts guarantee them
    sampler = _per_batch(boxes, batch=5, copies=20)
    n_t = sampler.samples.n_transforms
    drawn = np.array(list(sampler)) // n_t
    assert boxes.positives[drawn[::5]].all()
    rest = np.delete(drawn, np.arange(0, len(drawn), 5))
    assert set(rest) == set(range(20))  # every box, positives included, in the rest
    assert Counter(drawn[::5]) == Counter({0: 40, 1: 40})  # the positives cycled evenly


def test_per_batch_transforms_are_random_dihedrals_and_z_flips_for_deep_boxes() -> None:
    flat, deep = _per_batch(_boxes(4, 4), copies=50), _per_batch(_boxes(4, 4, depth=3), copies=50)
    assert flat.samples.n_transforms == 8 and deep.samples.n_transforms == 16
    assert set(np.array(list(flat)) % 8) == set(range(8))
    assert set(np.array(list(deep)) % 16) == set(range(16))
    x, y = deep.samples[2 * 16 + 13]  # box 2, dihedral 5, flipped in Z
    image = deep.samples.boxes.images[2]
    expected = standardise(dihedral(image, 5)[::-1])
    np.testing.assert_allclose(x.numpy(), expected, atol=1e-6)
    np.testing.assert_array_equal(y[0].numpy(), dihedral(deep.samples.boxes.labels[2], 5))


def test_per_batch_epochs_differ_and_repeat_from_the_seed() -> None:
    boxes = _boxes(4, 12)
    a, b = _per_batch(boxes, seed=3), _per_batch(boxes, seed=3)
    first = list(a)
    assert first == list(b)
    a.set_epoch(1)
    assert list(a) != first
    b.set_epoch(1)
    assert list(a) == list(b)
    assert list(_per_batch(boxes, seed=4)) != first


def test_globally_normalised_boxes_are_left_as_they_are() -> None:
    """global_mad boxes (the original's .scnt) are not re-standardised; others are."""
    boxes = _boxes(2, 2)
    boxes.images *= 3.0
    boxes.images += 1.0
    global_mad = BoxSet(boxes.images, boxes.labels, 10.0, "Membrane", normalization="global_mad")
    kept, _ = DihedralSamples(global_mad)[0]
    np.testing.assert_array_equal(kept.numpy(), global_mad.images[0])
    redone, _ = DihedralSamples(boxes)[0]
    assert abs(float(redone.std(correction=0)) - 1.0) < 1e-4
    assert not TrainingSamples(global_mad).standardise
    assert TrainingSamples(global_mad, standardise_boxes=True).standardise
    assert not BoxSamples(global_mad).standardise
