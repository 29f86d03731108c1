"""Picking algorithms on constructed volumes: the paper's watershed, the original's blob modes,
filaments, orientation, thresholds and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from ais_torch.errors import ConfigError
from ais_torch.picking.settings import (
    PickSettings,
    particle_ids,
    pick_array,
)
from ais_torch.picking.watershed import heavier_within_spacing

SHAPE = (32, 48, 48)


def _ball(vol: np.ndarray, centre_zyx, radius: float, value: float = 255) -> None:
    zz, yy, xx = np.ogrid[: vol.shape[0], : vol.shape[1], : vol.shape[2]]
    d2 = (zz - centre_zyx[0]) ** 2 + (yy - centre_zyx[1]) ** 2 + (xx - centre_zyx[2]) ** 2
    vol[d2 <= radius**2] = value


def _sorted_xyz(xyz: np.ndarray) -> np.ndarray:
    return xyz[np.lexsort(xyz.T[::-1])]


def test_watershed_splits_touching_spheres_and_drops_dust() -> None:
    vol = np.zeros(SHAPE, dtype=np.uint16)
    _ball(vol, (16, 24, 16), 5)
    _ball(vol, (16, 24, 25), 5)  # centres 9 px apart: the spheres overlap, one component
    vol[5, 5, 40] = 255  # a single-voxel speck
    assert (vol[16, 24, 16:26] > 0).all()
    settings = PickSettings(method="watershed", size_px=20, spacing_px=4)
    picks = pick_array(vol, 10.0, settings)
    assert len(picks) == 2
    np.testing.assert_allclose(_sorted_xyz(picks.xyz), [[16.2, 24, 16], [24.8, 24, 16]], atol=0.6)
    # without the dust filter the speck is a particle of its own
    loose = pick_array(vol, 10.0, PickSettings(method="watershed", size_px=0, spacing_px=4))
    assert len(loose) == 3
    assert any(np.allclose(p, [40, 5, 5]) for p in loose.xyz)


def test_watershed_spacing_keeps_the_heavier_group() -> None:
    vol = np.zeros(SHAPE, dtype=np.uint16)
    _ball(vol, (16, 24, 16), 4, value=120 + 80)  # bright: heavier
    _ball(vol, (16, 24, 25), 4, value=140)  # dim, same size: lighter
    settings = PickSettings(method="watershed", threshold=128, spacing_px=12)
    picks = pick_array(vol, 10.0, settings)
    assert len(picks) == 1
    np.testing.assert_allclose(picks.xyz[0], [16, 24, 16], atol=0.5)
    # the weight is the summed prediction (probability units), not the voxel count
    n_voxels = int((vol == 200).sum())
    assert picks.score[0] == pytest.approx(n_voxels * 200 / 255)
    # the original code would have kept the dim one; with a small spacing both survive
    both = pick_array(vol, 10.0, PickSettings(method="watershed", spacing_px=5))
    assert len(both) == 2
    assert both.score[0] > both.score[1]  # heaviest first


def test_spacing_rule_is_greedy_from_the_heaviest() -> None:
    # a chain A–B–C with A–B and B–C closer than the spacing, A–C not: B goes, A and C stay
    centroids = np.array([[0.0, 0, 0], [0, 0, 4], [0, 0, 8]])
    keep = heavier_within_spacing(centroids, np.array([3.0, 2.0, 1.0]), spacing=5)
    assert keep.tolist() == [True, False, True]
    keep = heavier_within_spacing(centroids, np.array([1.0, 3.0, 2.0]), spacing=5)
    assert keep.tolist() == [False, True, False]


def test_watershed_margin_and_binning() -> None:
    vol = np.zeros(SHAPE, dtype=np.uint16)
    _ball(vol, (16, 24, 24), 4)
    _ball(vol, (3, 24, 8), 3)  # near the z edge
    near_edge = pick_array(vol, 10.0, PickSettings(method="watershed"))
    assert len(near_edge) == 2  # no margin by default for the paper's method
    inside = pick_array(vol, 10.0, PickSettings(method="watershed", margin=5))
    assert len(inside) == 1
    binned = pick_array(vol, 10.0, PickSettings(method="watershed", binning=2, margin=5))
    assert len(binned) == 1
    # binned centroids map back to the full grid at voxel centres (no half-voxel shift)
    np.testing.assert_allclose(binned.xyz[0], inside.xyz[0], atol=0.75)


def test_float_probabilities_and_uint_grey_levels_give_the_same_picks() -> None:
    grey = np.zeros(SHAPE, dtype=np.uint16)
    _ball(grey, (16, 24, 16), 4, value=200)
    _ball(grey, (16, 24, 32), 4, value=100)  # below 128 / 0.5
    prob = (grey / 255.0).astype(np.float32)
    for threshold in (128, 0.5):
        a = pick_array(grey, 10.0, PickSettings(threshold=threshold))
        b = pick_array(prob, 10.0, PickSettings(threshold=threshold))
        assert len(a) == len(b) == 1
        np.testing.assert_allclose(a.xyz, b.xyz)
        np.testing.assert_allclose(a.score, b.score, rtol=1e-5)
    # a lower threshold finds the dim particle too, in both scales
    assert len(pick_array(grey, 10.0, PickSettings(threshold=0.3))) == 2
    assert len(pick_array(prob, 10.0, PickSettings(threshold=80))) == 2


@pytest.mark.parametrize("bad", [-0.1, 256, 1000, float("nan"), "high"])
def test_threshold_outside_both_scales_is_a_clear_error(bad) -> None:
    with pytest.raises(ConfigError, match=r"threshold=.*(0\.\.1|not a number)"):
        pick_array(np.zeros(SHAPE, np.uint16), 10.0, PickSettings(threshold=bad))


@pytest.mark.parametrize("method", ["watershed", "blob", "filament"])
def test_empty_segmentation_gives_no_picks(method: str) -> None:
    picks = pick_array(np.zeros(SHAPE, np.uint16), 10.0, PickSettings(method=method))
    assert len(picks) == 0
    assert picks.xyz.shape == (0, 3)


def test_all_ones_segmentation_is_one_particle_at_the_centre() -> None:
    full = np.full(SHAPE, 255, dtype=np.uint16)
    picks = pick_array(full, 10.0, PickSettings(method="watershed"))
    assert len(picks) == 1
    np.testing.assert_allclose(picks.xyz[0], [23.5, 23.5, 15.5])
    centroid = pick_array(full, 10.0, PickSettings(method="blob", centroid=True, margin=0))
    np.testing.assert_allclose(centroid.xyz, [[23.5, 23.5, 15.5]])
    # the original's distance-peak mode finds peaks on the all-foreground map too; no crash
    pick_array(full, 10.0, PickSettings(method="blob"))


def test_blob_modes_peaks_centroids_and_margin() -> None:
    vol = np.zeros((48, 64, 64), dtype=np.uint16)
    _ball(vol, (24, 30, 30), 4)
    _ball(vol, (24, 30, 45), 2)
    _ball(vol, (24, 5, 30), 3)  # inside the default 16 px margin
    peaks = pick_array(vol, 10.0, PickSettings(method="blob"))
    np.testing.assert_allclose(peaks.xyz, [[30, 30, 24], [45, 30, 24]])
    assert peaks.score[0] > peaks.score[1]  # deeper first
    cen = pick_array(vol, 10.0, PickSettings(method="blob", centroid=True))
    np.testing.assert_allclose(cen.xyz, [[30, 30, 24], [45, 30, 24]])
    assert cen.score[0] == pytest.approx((vol[:, 20:40, 20:40] > 0).sum() * 1000.0)  # Å^3
    no_margin = pick_array(vol, 10.0, PickSettings(method="blob", margin=0))
    assert len(no_margin) == 3
    small_gone = pick_array(vol, 10.0, PickSettings(method="blob", size_px=40))
    np.testing.assert_allclose(small_gone.xyz, [[30, 30, 24]])
    in_A3 = pick_array(vol, 10.0, PickSettings(method="blob", size_A3=40_000))
    np.testing.assert_allclose(in_A3.xyz, small_gone.xyz)


def test_orientation_of_a_disc_and_a_rod() -> None:
    vol = np.zeros(SHAPE, dtype=np.uint16)
    vol[14:17, 10:30, 10:30] = 255  # flat disc in XY: normal along z
    vol[14:17, 36:39, 4:44] = 255  # rod along x
    base = {"method": "blob", "centroid": True, "margin": 0}
    normal = pick_array(vol, 10.0, PickSettings(**base, orient="normal"))
    long_axis = pick_array(vol, 10.0, PickSettings(**base, orient="long-axis"))
    disc = np.argmin(np.abs(normal.xyz[:, 1] - 19.5))
    rod = 1 - disc
    assert normal.angles[disc][1] == pytest.approx(0.0, abs=1e-6)  # tilt 0: axis = +z
    assert long_axis.angles[rod][1] == pytest.approx(90.0, abs=1e-6)  # in plane
    assert abs(long_axis.angles[rod][2]) % 180 == pytest.approx(0.0, abs=1e-6)  # along x
    ws = pick_array(vol, 10.0, PickSettings(method="watershed", orient="normal"))
    assert ws.angles is not None and ws.angles.shape == (len(ws), 3)


def test_filament_points_follow_a_tube() -> None:
    vol = np.zeros((24, 48, 80), dtype=np.uint16)
    vol[10:14, 22:26, 8:72] = 255  # a straight tube along x, ~64 px long
    vol[10:14, 26:30, 40:42] = 255  # a short spur, pruned
    settings = PickSettings(method="filament", spacing_px=8, filament_length_px=20, margin=0)
    picks = pick_array(vol, 10.0, settings)
    assert 6 <= len(picks) <= 9
    assert set(picks.columns["aisFilamentID"].tolist()) == {0}
    np.testing.assert_allclose(picks.xyz[:, 1], 23.5, atol=1.0)
    np.testing.assert_allclose(picks.xyz[:, 2], 11.5, atol=1.0)
    assert np.allclose(np.diff(np.sort(picks.xyz[:, 0])), 8.0, atol=0.5)
    assert np.allclose(picks.angles[:, 1], 90.0, atol=5)  # tangent in the XY plane
    twisted = pick_array(vol, 10.0, PickSettings(**{**settings.__dict__, "twist": 30.0}))
    np.testing.assert_allclose(twisted.angles[:3, 0], [0, 30, 60])
    too_long = PickSettings(method="filament", filament_length_px=100, margin=0)
    assert len(pick_array(vol, 10.0, too_long)) == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "magic"}, "method="),
        ({"binning": 0}, "binning="),
        ({"spacing_px": -1}, "spacing_px="),
        ({"orient": "sideways"}, "orient="),
        ({"orient_sign": "up"}, "orient_sign="),
    ],
)
def test_bad_settings_name_the_key(kwargs, match) -> None:
    with pytest.raises(ConfigError, match=match):
        pick_array(np.zeros(SHAPE, np.uint16), 10.0, PickSettings(**kwargs))


def test_particle_ids_are_stable_and_distinct() -> None:
    xyz = np.array([[1.0, 2, 3], [1.0, 2, 4]])
    a = particle_ids("t__A.mrc", xyz)
    assert a == particle_ids("t__A.mrc", xyz)
    assert len(set(a)) == 2 and all(len(i) == 10 and i[0].isalpha() for i in a)
    assert particle_ids("t__B.mrc", xyz) != a
