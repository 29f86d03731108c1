"""Interactions: parity with the original's outputs (2d) and exact geometry (3d)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from ais_torch.errors import AisInputError, ConfigError
from ais_torch.interactions.rules import (
    Interaction,
    ais_disk_kernel,
    apply_interaction,
    apply_interaction_like_ais,
    plan_tiles,
)

REF = Path("reference/interaction")


def _params(shared_dir: Path) -> dict:
    return json.loads((shared_dir / REF / "interaction_params.json").read_text())


def _inputs(shared_dir: Path, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(antibody = parent, membrane = partner) as the reference's ``input_dtype`` says."""
    parent = np.load(shared_dir / REF / "input_antibody_uint8.npy")
    partner = np.load(shared_dir / REF / "input_membrane_uint8.npy")
    if kind == "float32":
        return parent.astype(np.float32) / 255, partner.astype(np.float32) / 255
    if kind == "uint16_as_read":
        return parent.astype(np.uint16), partner.astype(np.uint16)
    return parent, partner


SINGLE = [
    "avoid_membrane_r10_float32.npy",
    "avoid_membrane_r10_uint8.npy",
    "avoid_membrane_r10_uint16_as_read.npy",
    "colocalize_membrane_r30_float32.npy",
    "colocalize_membrane_r30_uint8.npy",
    "colocalize_membrane_r30_uint16_as_read.npy",
]


@pytest.mark.parametrize("name", SINGLE)
def test_like_ais_reproduces_reference_exactly(shared_dir: Path, name: str) -> None:
    spec = next(o for o in _params(shared_dir)["outputs"] if o["file"] == name)
    parent, partner = _inputs(shared_dir, spec["input_dtype"])
    out = apply_interaction_like_ais(
        parent,
        partner,
        type=spec["type"],
        radius_nm=spec["radius_nm"],
        threshold=spec["threshold"],
        pixel_size_nm=_params(shared_dir)["pixel_size_nm"],
    )
    ref = np.load(shared_dir / REF / name)
    assert out.dtype == ref.dtype == np.dtype(spec["output_dtype"].replace("_as_read", ""))
    np.testing.assert_array_equal(out, ref)
    kernel = ais_disk_kernel(spec["radius_nm"], 1.0)
    assert list(kernel.shape) == spec["kernel_shape"]
    assert int(kernel.sum()) == spec["kernel_nonzero"]


def test_like_ais_chain_reproduces_reference(shared_dir: Path) -> None:
    parent, partner = _inputs(shared_dir, "float32")
    out = apply_interaction_like_ais(
        parent, partner, type="avoid", radius_nm=10, threshold=0.5, pixel_size_nm=1.0
    )
    out = apply_interaction_like_ais(
        out, partner, type="colocalize", radius_nm=30, threshold=0.5, pixel_size_nm=1.0
    )
    ref = np.load(shared_dir / REF / "avoid_r10_then_colocalize_r30_float32.npy")
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("name", SINGLE)
def test_product_2d_matches_reference_values_and_keeps_dtype(shared_dir: Path, name: str) -> None:
    """Same values as the original for uint8/float32; uint16 0..255 is thresholded ×255 (the
    original's pitfall is NOT reproduced, so it equals the uint8 reference instead)."""
    spec = next(o for o in _params(shared_dir)["outputs"] if o["file"] == name)
    parent, partner = _inputs(shared_dir, spec["input_dtype"])
    rule = Interaction("Antibody", "Membrane", spec["type"], spec["radius_nm"], 0.5, "2d")
    out = apply_interaction(parent.copy()[None], partner[None], rule, voxel_size_A=10.0)[0]
    assert out.dtype == parent.dtype
    ref_name = name.replace("uint16_as_read", "uint8")
    np.testing.assert_array_equal(out, np.load(shared_dir / REF / ref_name))


@pytest.mark.parametrize(
    ("radius_nm", "voxel_A", "kind"),
    [(10, 10.0, "avoid"), (7, 13.7, "colocalize"), (3, 3.0, "avoid"), (0.99, 10.0, "avoid")],
)
def test_product_2d_equals_original_kernel_on_stacks(radius_nm, voxel_A, kind) -> None:
    """The distance-transform path equals the original's binary_dilation, slice by slice
    (no growth along z), for odd pixel sizes and sub-pixel radii too."""
    rng = np.random.default_rng(0)
    partner = (rng.random((4, 40, 50)) > 0.995).astype(np.float32)
    partner[2] = 0  # an empty slice stays unaffected by its neighbours
    parent = rng.random((4, 40, 50)).astype(np.float32)
    want = apply_interaction_like_ais(
        parent, partner, type=kind, radius_nm=radius_nm, pixel_size_nm=voxel_A / 10
    )
    rule = Interaction("A", "B", kind, radius_nm, 0.5, "2d")
    got = apply_interaction(parent.copy(), partner, rule, voxel_size_A=voxel_A)
    np.testing.assert_array_equal(got, want)


def _point(shape=(9, 9, 9)) -> np.ndarray:
    partner = np.zeros(shape, np.uint8)
    partner[tuple(n // 2 for n in shape)] = 255
    return partner


METHODS = pytest.mark.parametrize("method", ["slices", "tiles"])


@METHODS
def test_3d_ball_around_a_point_has_the_lattice_count(method: str) -> None:
    """Lattice points with x²+y²+z² <= 2²: 1 + 6 + 12 + 8 + 6 = 33 (radius inclusive)."""
    rule = Interaction("A", "B", "colocalize", radius_nm=2.0, geometry="3d")
    kept = apply_interaction(np.ones((9, 9, 9), np.uint8), _point(), rule, 10.0, method=method)
    assert kept.sum() == 33
    zz, yy, xx = np.nonzero(kept)
    assert ((zz - 4) ** 2 + (yy - 4) ** 2 + (xx - 4) ** 2).max() == 4


@METHODS
def test_3d_anisotropic_voxels_use_each_axis_size(method: str) -> None:
    """z voxels of 2 nm, y/x of 1 nm, R = 4 nm: the kept region is the ellipsoid
    (2 dz)² + dy² + dx² <= 16, i.e. |dz| <= 2 along z but |dx| <= 4 along x."""
    rule = Interaction("A", "B", "colocalize", radius_nm=4.0, geometry="3d")
    shape = (9, 13, 13)
    ones = np.ones(shape, np.float32)
    kept = apply_interaction(ones, _point(shape), rule, (20.0, 10.0, 10.0), method=method)
    dz, dy, dx = np.ogrid[-4:5, -6:7, -6:7]
    np.testing.assert_array_equal(kept.astype(bool), (2 * dz) ** 2 + dy**2 + dx**2 <= 16)
    assert kept[:, 6, 6].sum() == 5 and kept[4, 6, :].sum() == 9


@METHODS
def test_3d_plane_partner_keeps_a_slab(method: str) -> None:
    """Partner = one full z plane; avoid within 5 nm at 2 nm z voxels removes |dz| <= 2."""
    partner = np.zeros((21, 6, 6), np.float32)
    partner[10] = 0.9
    rule = Interaction("A", "B", "avoid", radius_nm=5.0, geometry="3d")
    ones = np.ones((21, 6, 6), np.float32)
    kept = apply_interaction(ones, partner, rule, (20.0, 10.0, 10.0), method=method)
    removed = np.nonzero(kept[:, 0, 0] == 0)[0]
    np.testing.assert_array_equal(removed, [8, 9, 10, 11, 12])
    assert np.all(kept[:, 0, 0] == kept[:, 5, 5])


@pytest.mark.parametrize("voxel", [(10.0, 10.0, 10.0), (15.0, 10.0, 7.0)])
def test_3d_shell_partner_matches_brute_force_for_every_method(voxel) -> None:
    """A spherical shell grown by 3 nm equals a dilation with the exact (ellipsoidal, for
    anisotropic voxels) ball, whichever method and tile size (halo = R keeps tiles exact)."""
    zz, yy, xx = np.ogrid[-12:13, -12:13, -12:13]
    r = np.sqrt(zz**2 + yy**2 + xx**2)
    partner = ((r >= 7.5) & (r < 8.5)).astype(np.uint8) * 200
    vz, vy, vx = (v / 10 for v in voxel)
    d = np.arange(-4, 5)
    ball = (
        (d[:, None, None] * vz) ** 2 + (d[None, :, None] * vy) ** 2 + (d[None, None, :] * vx) ** 2
    )
    want = ndi.binary_dilation(partner > 127, structure=ball <= 9 + 1e-9)
    rule = Interaction("A", "B", "colocalize", radius_nm=3.0, geometry="3d")
    for method, tile in (("slices", 0), ("tiles", 1 << 25), ("tiles", 2000), ("auto", 0)):
        ones = np.ones(partner.shape, np.uint8)
        kept = apply_interaction(ones, partner, rule, voxel, method=method, tile_voxels=tile)
        np.testing.assert_array_equal(kept.astype(bool), want, err_msg=f"{method} {tile}")
    assert plan_tiles(partner.shape, (3, 3, 3), 2000) != partner.shape  # really tiled


def test_3d_large_radius_switches_to_tiles_with_the_same_answer() -> None:
    """R = 70 z voxels is past the slice window limit: auto uses tiles; slices agree."""
    partner = _point((3, 5, 160))
    rule = Interaction("A", "B", "avoid", radius_nm=70.0, geometry="3d")
    auto = apply_interaction(np.ones((3, 5, 160), np.uint8), partner, rule, 10.0)
    slices = apply_interaction(np.ones((3, 5, 160), np.uint8), partner, rule, 10.0, method="slices")
    np.testing.assert_array_equal(auto, slices)
    np.testing.assert_array_equal(np.nonzero(auto[1, 2] == 0)[0], np.arange(80 - 70, 80 + 71))


def test_3d_radius_is_scaled_by_voxel_size() -> None:
    """2 nm at 5 Å voxels is 4 voxels."""
    rule = Interaction("A", "B", "colocalize", radius_nm=2.0, geometry="3d")
    kept = apply_interaction(np.ones((1, 1, 15), np.uint8), _point((1, 1, 15)), rule, 5.0)
    np.testing.assert_array_equal(np.nonzero(kept[0, 0])[0], np.arange(3, 12))


@pytest.mark.parametrize("geometry", ["2d", "3d"])
def test_empty_partner_avoid_keeps_all_colocalize_removes_all(geometry: str) -> None:
    parent = np.full((3, 8, 8), 0.7, np.float32)
    partner = np.full((3, 8, 8), 0.5, np.float32)  # exactly at threshold: not partner (strict >)
    avoid = Interaction("A", "B", "avoid", 10, 0.5, geometry)
    coloc = Interaction("A", "B", "colocalize", 10, 0.5, geometry)
    np.testing.assert_array_equal(apply_interaction(parent.copy(), partner, avoid, 10.0), parent)
    assert not apply_interaction(parent.copy(), partner, coloc, 10.0).any()


def test_radius_zero() -> None:
    """3d: R = 0 keeps exactly the partner mask. 2d: the original's empty disk (r < 1 px) —
    colocalize removes everything, avoid removes nothing."""
    partner = _point((3, 5, 5))
    parent = np.full((3, 5, 5), 9, np.uint8)
    kept = apply_interaction(parent.copy(), partner, Interaction("A", "B", 0, 0.0), 10.0)
    np.testing.assert_array_equal(kept, np.where(partner > 127, 9, 0))
    for r in (0.0, 0.5):
        coloc = Interaction("A", "B", "colocalize", r, geometry="2d")
        assert not apply_interaction(parent.copy(), partner, coloc, 10.0).any()
        avoid = Interaction("A", "B", "avoid", r, geometry="2d")
        np.testing.assert_array_equal(
            apply_interaction(parent.copy(), partner, avoid, 10.0), parent
        )


def test_uint8_threshold_is_scaled_to_255() -> None:
    """Threshold 0.5 on uint8 means > 127.5: 128 is partner, 127 is not."""
    parent = np.full((1, 1, 2), 50, np.uint8)
    partner = np.array([[[127, 128]]], np.uint8)
    rule = Interaction("A", "B", "colocalize", 0.0)
    np.testing.assert_array_equal(apply_interaction(parent, partner, rule, 10.0), [[[0, 50]]])
    one_slice = np.full((1, 2), 50, np.uint8)  # a single (y, x) slice works too
    np.testing.assert_array_equal(apply_interaction(one_slice, partner[0], rule, 10.0), [[0, 50]])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threshold": 1.5}, "outside [0, 1]"),
        ({"threshold": -0.1}, "outside [0, 1]"),
        ({"radius_nm": -1}, ">= 0"),
        ({"radius_nm": float("nan")}, "finite"),
        ({"type": "attract"}, "colocalize (0) or avoid (1)"),
        ({"type": 2}, "colocalize (0) or avoid (1)"),
        ({"geometry": "4d"}, "2d or 3d"),
        ({"partner": "A"}, "itself"),
        ({"min_size_nm3": -5}, "min_size_nm3 should be >= 0"),
        ({"min_size_nm3": "big"}, "min_size_nm3 should be a number"),
    ],
)
def test_bad_rules_are_config_errors(kwargs: dict, message: str) -> None:
    args = {"parent": "A", "partner": "B", "type": "avoid", "radius_nm": 10} | kwargs
    with pytest.raises(ConfigError, match=re.escape(message)):
        Interaction(**args)


def test_spellings_and_group_dict_round_trip() -> None:
    rule = Interaction("A", "B", "Colocalise", 30)
    assert rule.type == "colocalize"
    group = Interaction.from_group(Interaction("A", "B", 1, 10, 0.4).as_group_dict())
    assert (group.type, group.radius_nm, group.threshold, group.geometry) == (
        "avoid",
        10,
        0.4,
        "2d",
    )
    assert "min_size_nm3" not in Interaction("A", "B", 1, 10).as_group_dict()  # the original's keys
    dusty = Interaction.from_group(Interaction("A", "B", 1, 10, min_size_nm3=500).as_group_dict())
    assert dusty.min_size_nm3 == 500


def _membrane_and_speck() -> np.ndarray:
    """A (20, 40, 40) partner: a 40×40-voxel sheet at z = 2 and a 2×2×2 speck at z = 15."""
    partner = np.zeros((20, 40, 40), np.uint8)
    partner[2] = 255
    partner[15:17, 20:22, 20:22] = 200
    return partner


@pytest.mark.parametrize("geometry", ["2d", "3d"])
def test_min_size_ignores_small_partner_pieces(geometry: str) -> None:
    """A speck (8 voxels) no longer counts as partner; the sheet (1,600 voxels) still does."""
    partner = _membrane_and_speck()
    near_speck = (15, 20, 29)  # 8 px from the speck's edge in the same slice, far from the sheet
    near_sheet = (2, 5, 5)
    for voxel_A, min_size, speck_counts in [
        (10.0, 0, True),  # off: the original's behaviour
        (10.0, 8, True),  # 8 voxels × 1 nm³ = 8 nm³, not smaller than 8
        (10.0, 9, False),
        (20.0, 64, True),  # voxel size scales the volume: 8 × 8 nm³
        (20.0, 65, False),
    ]:
        rule = Interaction("A", "B", "avoid", 9.0 * voxel_A / 10, geometry=geometry,
                           min_size_nm3=min_size)  # fmt: skip
        parent = np.full(partner.shape, 100, np.uint8)
        apply_interaction(parent, partner, rule, voxel_A)
        assert parent[near_sheet] == 0, (voxel_A, min_size)
        assert (parent[near_speck] == 0) == speck_counts, (voxel_A, min_size)
    assert partner.max() == 255 and (partner == 200).sum() == 8  # the partner is not changed


def test_min_size_on_colocalize_drops_what_only_a_speck_kept() -> None:
    partner = _membrane_and_speck()
    rule = Interaction("A", "B", "colocalize", 5.0, min_size_nm3=100)
    parent = np.full(partner.shape, 0.7, np.float32)
    apply_interaction(parent, partner, rule, 10.0)
    assert parent[15, 20, 24] == 0  # beside the speck: gone
    assert parent[6, 30, 30] == np.float32(0.7)  # 4 nm above the sheet: kept
    assert parent[8, 30, 30] == 0  # 6 nm above it: outside R


def test_shape_mismatch_and_read_only_parent_are_input_errors() -> None:
    rule = Interaction("A", "B", "avoid", 1)
    with pytest.raises(AisInputError, match="shapes differ"):
        apply_interaction(np.ones((2, 4, 4)), np.ones((2, 4, 5)), rule, 10.0)
    frozen = np.ones((2, 4, 4))
    frozen.flags.writeable = False
    with pytest.raises(AisInputError, match="read-only"):
        apply_interaction(frozen, np.ones((2, 4, 4)), rule, 10.0)
    with pytest.raises(AisInputError, match="voxel size"):
        apply_interaction(np.ones((2, 4, 4)), np.ones((2, 4, 4)), rule, 0.0)
