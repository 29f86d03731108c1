"""Picks that carry context: measures on constructed geometry, the syntax, keep= and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import starfile
from scipy.ndimage import distance_transform_edt

from ais_torch.errors import AisInputError, ConfigError
from ais_torch.formats.mrc import write_volume
from ais_torch.picking.batch import FileContext, OutputSpec, pick_one
from ais_torch.picking.context import (
    ContextItem,
    ContextSettings,
    add_context,
    context_columns,
    keep_mask,
    mean_max_within,
    nearest_distance,
    parse_item,
    parse_keep,
    signed_distance,
)
from ais_torch.picking.settings import Picks, PickSettings

VOXEL_A = 10.0  # 1 nm per voxel: distances in nm = distances in voxels
SHAPE = (48, 40, 40)  # z, y, x
MEMBRANE_Z = (10, 12)  # membrane plane occupies z = 10, 11


def membrane_plane(dtype: type = np.uint8) -> np.ndarray:
    vol = np.zeros(SHAPE, dtype=dtype)
    vol[MEMBRANE_Z[0] : MEMBRANE_Z[1]] = 255 if dtype == np.uint8 else 1.0
    return vol


def test_signed_distance_to_a_plane() -> None:
    # x, y, z voxels: 10 and 25 nm above the membrane's top voxel (z=11), 7 below its bottom
    # (z=10), one inside; picks at fractional positions land on their nearest voxel
    picks = np.array([[20, 20, 21], [5.2, 30, 36.4], [20, 20, 3], [20, 20, 10]])
    d = signed_distance(membrane_plane(), picks, VOXEL_A)
    np.testing.assert_allclose(d, [10.0, 25.0, 7.0, -1.0], atol=1e-9)
    # float 0-1 segmentations and a threshold as a grey level read the same
    np.testing.assert_allclose(
        signed_distance(membrane_plane(np.float32), picks, VOXEL_A, threshold=128), d
    )
    # 5 Å voxels: the same voxel distances are half the nm
    np.testing.assert_allclose(signed_distance(membrane_plane(), picks, 5.0), d / 2)


def test_signed_distance_is_capped_and_a_missing_feature_reads_as_the_cap() -> None:
    picks = np.array([[20, 20, 21], [20, 20, 45]])
    np.testing.assert_allclose(
        signed_distance(membrane_plane(), picks, VOXEL_A, max_nm=20), [10.0, 20.0]
    )
    empty = np.zeros(SHAPE, dtype=np.uint8)
    np.testing.assert_allclose(signed_distance(empty, picks, VOXEL_A, max_nm=30), [30.0, 30.0])


def test_signed_distance_equals_a_whole_volume_distance_transform() -> None:
    """Random blobs: the slice-by-slice crop walk gives what two full 3D EDTs give."""
    rng = np.random.default_rng(3)
    mask = np.zeros((30, 34, 38), dtype=bool)
    for _ in range(6):
        z, y, x = rng.integers(0, mask.shape)
        r = rng.integers(2, 6)
        zz, yy, xx = np.ogrid[: mask.shape[0], : mask.shape[1], : mask.shape[2]]
        mask |= (zz - z) ** 2 + (yy - y) ** 2 + (xx - x) ** 2 <= r * r
    voxel_nm = 0.8
    outside = distance_transform_edt(~mask, sampling=voxel_nm)
    inside = distance_transform_edt(mask, sampling=voxel_nm)
    zyx = np.stack([rng.integers(0, n, 40) for n in mask.shape], axis=1)
    expected = np.where(mask[tuple(zyx.T)], -inside[tuple(zyx.T)], outside[tuple(zyx.T)])
    got = signed_distance(mask.astype(np.uint8) * 255, zyx[:, ::-1], voxel_nm * 10, max_nm=1000)
    np.testing.assert_allclose(got, expected, atol=1e-9)


def _sphere_count(radius: float) -> int:
    r = int(np.ceil(radius))
    g = np.arange(-r, r + 1)
    return int(
        ((g[:, None, None] ** 2 + g[None, :, None] ** 2 + g[None, None, :] ** 2) <= radius**2).sum()
    )


def test_mean_and_max_within_a_radius_on_a_blob() -> None:
    vol = np.zeros(SHAPE, dtype=np.uint8)
    zz, yy, xx = np.ogrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    vol[(zz - 24) ** 2 + (yy - 20) ** 2 + (xx - 20) ** 2 <= 9] = 255  # radius 3 voxels
    centre, far = [20, 20, 24], [20, 20, 32]  # x, y, z; far: 5 voxels beyond the blob's edge
    mean, peak = mean_max_within(vol, [centre, far], VOXEL_A, 3.0)
    np.testing.assert_allclose(mean, [1.0, 0.0])
    np.testing.assert_allclose(peak, [1.0, 0.0])
    mean, peak = mean_max_within(vol, [centre, far], VOXEL_A, 6.0)
    np.testing.assert_allclose(mean[0], _sphere_count(3) / _sphere_count(6))
    np.testing.assert_allclose(peak, [1.0, 1.0])  # the far pick's 6 nm reach the blob
    assert 0 < mean[1] < mean[0]
    # a radius below one voxel still reads the pick's own voxel
    np.testing.assert_allclose(mean_max_within(vol, [centre], VOXEL_A, 0.1)[0], [1.0])


def test_nearest_pick_of_another_feature_and_of_the_same() -> None:
    picks = np.array([[0, 0, 0], [10, 0, 0], [0, 30, 0]], dtype=float)
    others = np.array([[3, 4, 0], [10, 0, 7]], dtype=float)
    np.testing.assert_allclose(
        nearest_distance(picks, others, VOXEL_A), [5.0, 7.0, np.hypot(3, 26)]
    )
    np.testing.assert_allclose(
        nearest_distance(picks, picks, VOXEL_A, same=True), [10.0, 10.0, 30.0]
    )
    np.testing.assert_allclose(nearest_distance(picks, others, 20.0, max_nm=8.0), [8.0] * 3)
    np.testing.assert_allclose(nearest_distance(picks, np.zeros((0, 3)), VOXEL_A), [100.0] * 3)


def test_syntax_and_column_names() -> None:
    assert parse_item("Membrane:distance") == ContextItem("Membrane", "distance")
    assert parse_item(" Carbon:mean@5 ").column == "aisMeanCarbonWithin5Nm"
    assert parse_item("Carbon:max@2.5").column == "aisMaxCarbonWithin2p5Nm"
    assert parse_item("Membrane:distance").column == "aisDistanceMembraneNm"
    assert parse_item("Ribo_80S:nearest").column == "aisNearestRibo80SNm"
    rule = parse_keep("15<=Membrane:distance<=30")
    assert rule.tests == ((">=", 15.0), ("<=", 30.0))
    assert parse_keep("Carbon:mean@5 < 0.2").tests == (("<", 0.2),)
    assert parse_keep("-3>Membrane:distance").tests == (("<", -3.0),)
    settings = ContextSettings.parse(["Carbon:mean@5"], ["Membrane:distance>=15"])
    assert [i.label for i in settings.items] == ["Carbon:mean@5", "Membrane:distance"]
    for bad, match in [
        ("Membrane:area", "measure 'area' unknown"),
        ("Carbon:mean", "needs a radius"),
        ("Membrane:distance@5", "takes no @radius"),
        ("Membrane distance", "not understood"),
    ]:
        with pytest.raises(ConfigError, match=match):
            ContextSettings.parse([bad])
    with pytest.raises(ConfigError, match="keep rule 'Membrane:distance' not understood"):
        ContextSettings.parse([], ["Membrane:distance"])
    with pytest.raises(ConfigError, match="context_threshold=300"):
        ContextSettings.parse(["Membrane:distance"], threshold=300)


class _Arrays:
    """A context source holding arrays (what a copick run or a folder provides)."""

    def __init__(self, volumes: dict[str, np.ndarray], picks: dict[str, np.ndarray]) -> None:
        self.volumes, self.xyz = volumes, picks

    def segmentation(self, feature: str) -> np.ndarray:
        return self.volumes[feature]

    def picks(self, feature: str) -> np.ndarray:
        return self.xyz[feature]


def test_keep_removes_exactly_the_picks_outside_the_band() -> None:
    # particles at 5, 10, 18, 25 and 35 nm above the membrane, one inside it
    heights = [5, 10, 18, 25, 35, 0]
    xyz = np.array([[8 + 4 * i, 20, MEMBRANE_Z[1] - 1 + h] for i, h in enumerate(heights)], float)
    picks = Picks(xyz=xyz, score=np.arange(6.0))
    settings = ContextSettings.parse(
        ["Carbon:nearest"], ["Membrane:distance>=15", "Membrane:distance<=30"]
    )
    source = _Arrays({"Membrane": membrane_plane()}, {"Carbon": np.array([[8.0, 20, 16]])})
    result = add_context(picks, VOXEL_A, settings, source, own_feature="Antibody")
    assert result.dropped == 4
    np.testing.assert_array_equal(result.picks.score, [2.0, 3.0])  # the 18 and 25 nm picks
    np.testing.assert_allclose(result.picks.columns["aisDistanceMembraneNm"], [18.0, 25.0])
    assert set(result.columns) == {"aisNearestCarbonNm", "aisDistanceMembraneNm"}
    columns = context_columns(xyz, VOXEL_A, settings, source)
    np.testing.assert_array_equal(
        keep_mask(columns, settings.keep, len(xyz)), [False, False, True, True, False, False]
    )


# -- files --------------------------------------------------------------------------------------
def _antibodies(heights: list[int]) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """Small balls at the given heights (nm) above the membrane's top voxel; (z, y, x) centres."""
    vol = np.zeros(SHAPE, dtype=np.uint8)
    zz, yy, xx = np.ogrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    centres = [(MEMBRANE_Z[1] - 1 + h, 20, 8 + 8 * i) for i, h in enumerate(heights)]
    for z, y, x in centres:
        vol[(zz - z) ** 2 + (yy - y) ** 2 + (xx - x) ** 2 <= 2] = 255
    return vol, centres


@pytest.fixture
def seg_dir(tmp_path: Path) -> Path:
    d = tmp_path / "seg"
    d.mkdir()
    antibodies, _ = _antibodies([10, 25, 33, 20])
    write_volume(d / "tomo__Antibody.mrc", antibodies, voxel_size_A=VOXEL_A)
    write_volume(d / "tomo__Membrane.mrc", membrane_plane(), voxel_size_A=VOXEL_A)
    return d


def test_pick_one_writes_context_columns_and_filters(seg_dir: Path, tmp_path: Path) -> None:
    spec = OutputSpec(
        folder=tmp_path / "out",
        formats=("star", "json"),
        context=ContextSettings.parse(
            ["Membrane:mean@3", "Antibody:nearest"], ["15<=Membrane:distance<=30"]
        ),
    )
    spec.folder.mkdir()
    settings = PickSettings(method="blob", centroid=True, margin=0).checked()
    result = pick_one(seg_dir / "tomo__Antibody.mrc", settings, spec)
    assert result.error is None and (result.n_particles, result.n_dropped) == (2, 2)
    star = starfile.read(spec.folder / "tomo__Antibody_coords.star")
    np.testing.assert_allclose(np.sort(star["aisDistanceMembraneNm"]), [20.0, 25.0])
    np.testing.assert_allclose(star["aisMeanMembraneWithin3Nm"], 0.0)
    # kept: (z, x) = (36, 16) and (31, 32); nearest antibodies (44, 24) for both
    np.testing.assert_allclose(
        np.sort(star["aisNearestAntibodyNm"]), np.sqrt([128, 233]), atol=1e-3
    )
    doc = json.loads((spec.folder / "tomo__Antibody_coords.json").read_text())
    assert sorted(p["ais_context"]["aisDistanceMembraneNm"] for p in doc["points"]) == [20, 25]


def test_missing_context_files_are_one_line_errors(seg_dir: Path, tmp_path: Path) -> None:
    source = FileContext("tomo", seg_dir, tmp_path, SHAPE)
    with pytest.raises(AisInputError, match=r"no segmentation tomo__Carbon\.mrc in .*segment"):
        source.segmentation("Carbon")
    with pytest.raises(AisInputError, match="run ais-torch pick feature=Ribosome"):
        source.picks("Ribosome")
    write_volume(seg_dir / "tomo__Small.mrc", np.zeros((4, 4, 4), np.uint8), voxel_size_A=VOXEL_A)
    with pytest.raises(AisInputError, match="must share the tomogram's grid"):
        source.segmentation("Small")


def test_cli_context_and_keep(seg_dir: Path, tmp_path: Path) -> None:
    """``python -m ais_torch pick`` with context= and keep= on tiny files."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    args = [
        f"data={seg_dir}",
        "feature=Antibody",
        "out=picks",
        "method=blob",
        "centroid=true",
        "margin=0",
        "context=[Membrane:distance,Membrane:max@2]",
        'keep=["Membrane:distance>=15"]',
    ]
    result = subprocess.run(
        [sys.executable, "-m", "ais_torch", "pick", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "3 particle(s), 1 removed by keep=" in result.stdout
    star = starfile.read(tmp_path / "picks" / "tomo__Antibody_coords.star")
    np.testing.assert_allclose(np.sort(star["aisDistanceMembraneNm"]), [20.0, 25.0, 33.0])
    assert {"aisMaxMembraneWithin2Nm", "aisParticleID"} <= set(star.columns)
    assert len((tmp_path / "picks" / "tomo__Antibody_coords.txt").read_text().splitlines()) == 3


def test_copick_picks_carry_the_context(tmp_path: Path) -> None:
    """Picking a copick project: the other feature comes from the run, the columns go into
    each copick point as ``ais_context`` and into the STAR file."""
    pytest.importorskip("copick")
    from copick_project import make_project

    from ais_torch.formats import copick as cp
    from ais_torch.formats.copick import CopickOptions
    from ais_torch.picking.batch import pick_copick

    project = make_project(
        tmp_path / "proj", {"TS_001": {10.0: {"wbp": np.zeros(SHAPE, np.float32)}}}
    )
    antibodies, _ = _antibodies([10, 25, 33, 20])
    cp.write_segmentation(project, "TS_001", "antibody", antibodies, voxel_size_A=VOXEL_A)
    cp.write_segmentation(project, "TS_001", "membrane", membrane_plane(), voxel_size_A=VOXEL_A)
    spec = OutputSpec(
        folder=tmp_path / "picks",
        formats=("star",),
        context=ContextSettings.parse([], ["15<=Membrane:distance<=30"]),
    )
    settings = PickSettings(method="blob", centroid=True, margin=0).checked()
    (result,) = pick_copick(project, "Antibody", settings, spec, CopickOptions())
    assert result.error is None and (result.n_particles, result.n_dropped) == (2, 2)
    doc = json.loads(_picks_file(project).read_text())
    assert sorted(p["ais_context"]["aisDistanceMembraneNm"] for p in doc["points"]) == [20, 25]
    located, _ = cp.read_picks(project, "TS_001", "antibody")  # copick still reads them
    assert len(located) == 2
    star = starfile.read(spec.folder / "TS_001__Antibody_coords.star")
    np.testing.assert_allclose(np.sort(star["aisDistanceMembraneNm"]), [20.0, 25.0])


def _picks_file(project: Path) -> Path:
    (path,) = (project.parent / "overlay").rglob("*antibody.json")
    return path
