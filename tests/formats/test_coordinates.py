"""Particle coordinates: TSV and RELION STAR round trips, empty lists, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import starfile

from ais_torch.errors import AisInputError
from ais_torch.formats.coordinates import (
    read_coordinates_tsv,
    read_star,
    write_coordinates_tsv,
    write_star,
)


@pytest.fixture
def xyz() -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 250, size=(17, 3))


def _no_partials(folder: Path) -> None:
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_tsv_round_trip(tmp_path: Path, xyz: np.ndarray) -> None:
    path = write_coordinates_tsv(tmp_path / "p.tsv", xyz)
    assert path.read_text().splitlines()[0] == "x\ty\tz"
    np.testing.assert_allclose(read_coordinates_tsv(path), xyz, atol=5e-4)
    _no_partials(tmp_path)


def test_tsv_empty_round_trip(tmp_path: Path) -> None:
    path = write_coordinates_tsv(tmp_path / "empty.tsv", [])
    assert path.read_text() == "x\ty\tz\n"
    out = read_coordinates_tsv(path)
    assert out.shape == (0, 3)


def test_tsv_reads_columns_by_name(tmp_path: Path) -> None:
    path = tmp_path / "other.tsv"
    path.write_text("score\tz\ty\tx\n0.9\t3\t2\t1\n0.5\t6\t5\t4\n")
    np.testing.assert_array_equal(read_coordinates_tsv(path), [[1, 2, 3], [4, 5, 6]])


@pytest.mark.parametrize(
    ("text", "match"),
    [("", "empty"), ("a\tb\tc\n1\t2\t3\n", "lacks x, y and z"), ("x\ty\tz\n1\tfoo\t3\n", "line 2")],
)
def test_tsv_bad_files(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.tsv"
    path.write_text(text)
    with pytest.raises(AisInputError, match=match):
        read_coordinates_tsv(path)


def test_tsv_rejects_wrong_shape(tmp_path: Path) -> None:
    with pytest.raises(AisInputError, match=r"\(N, 3\)"):
        write_coordinates_tsv(tmp_path / "p.tsv", np.zeros((4, 2)))
    assert not list(tmp_path.iterdir())


def test_star_round_trip_relion3_and_5_columns(tmp_path: Path, xyz: np.ndarray) -> None:
    angles = np.tile([10.0, 20.0, 30.0], (len(xyz), 1))
    path = write_star(
        tmp_path / "p.star",
        xyz,
        tomo_name="tomo_00",
        voxel_size_A=10.0,
        shape_zyx=(64, 256, 200),
        angles=angles,
        extra={"aisParticleSize": np.arange(len(xyz), dtype=float), "aisSource": "demo"},
    )
    np.testing.assert_allclose(read_star(path), xyz, atol=5e-4)
    df = starfile.read(path, always_dict=True)["particles"]
    assert set(df["rlnMicrographName"]) == {"tomo_00"}
    assert set(df["rlnTomoName"]) == {"tomo_00"}
    # RELION 5: Å from the tomogram centre, centre = size / 2.
    np.testing.assert_allclose(
        df["rlnCenteredCoordinateXAngst"], (xyz[:, 0] - 100.0) * 10, atol=5e-3
    )
    np.testing.assert_allclose(
        df["rlnCenteredCoordinateYAngst"], (xyz[:, 1] - 128.0) * 10, atol=5e-3
    )
    np.testing.assert_allclose(
        df["rlnCenteredCoordinateZAngst"], (xyz[:, 2] - 32.0) * 10, atol=5e-3
    )
    np.testing.assert_allclose(df["rlnAngleTilt"], 20.0)
    assert list(df["aisParticleSize"]) == list(range(len(xyz)))
    _no_partials(tmp_path)


def test_star_empty_is_valid(tmp_path: Path) -> None:
    path = write_star(
        tmp_path / "none.star",
        np.zeros((0, 3)),
        tomo_name="t",
        voxel_size_A=10,
        shape_zyx=(8, 8, 8),
    )
    assert read_star(path).shape == (0, 3)
    df = starfile.read(path, always_dict=True)["particles"]
    assert "rlnCoordinateX" in df.columns and len(df) == 0


def test_star_centred_needs_shape(tmp_path: Path, xyz: np.ndarray) -> None:
    with pytest.raises(AisInputError, match="shape_zyx"):
        write_star(tmp_path / "p.star", xyz, tomo_name="t", voxel_size_A=10.0)
    assert not list(tmp_path.iterdir())


def test_star_without_coordinates(tmp_path: Path) -> None:
    path = tmp_path / "r5.star"
    starfile.write(
        {"particles": {"rlnCenteredCoordinateXAngst": [0.0], "rlnTomoName": ["t"]}}, path
    )
    with pytest.raises(AisInputError, match="RELION-5"):
        read_star(path)
    with pytest.raises(AisInputError, match="not found"):
        read_star(tmp_path / "missing.star")


def test_reads_reference_kit_files(shared_dir: Path) -> None:
    """Files written by the original Ais (picks) and by the kit's generator (truth TSV)."""
    ref = shared_dir / "reference"
    picks = read_star(ref / "picks/TRUTH/default/seed101__Antibody_coords.star")
    assert picks.ndim == 2 and picks.shape[1] == 3 and len(picks) > 0
    truth = read_coordinates_tsv(ref / "tomograms/seed101/particles_truth.tsv")
    assert truth.shape[1] == 3 and len(truth) > 0
    # every oracle pick lies on a true particle
    d = np.linalg.norm(picks[:, None, :] - truth[None, :, :], axis=-1).min(axis=1)
    assert d.max() < 5.0


def test_star_single_particle_simple_block(tmp_path: Path) -> None:
    """Some tools write one particle as key-value pairs instead of a loop."""
    path = tmp_path / "one.star"
    starfile.write(
        {"particles": {"rlnCoordinateX": 1.0, "rlnCoordinateY": 2.0, "rlnCoordinateZ": 3.0}}, path
    )
    np.testing.assert_array_equal(read_star(path), [[1.0, 2.0, 3.0]])
