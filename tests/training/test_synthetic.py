"""Built-in demo data: determinism, labels that line up with the density, the demo folder/CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from ais_torch.commands import demo
from ais_torch.errors import AisInputError, ConfigError
from ais_torch.formats.coordinates import read_coordinates_tsv, read_star
from ais_torch.formats.mrc import read_volume
from ais_torch.training.synthetic import (
    FEATURES,
    MIN_SHAPE,
    SyntheticTomogram,
    annotation_volume,
    choose_annotated_slices,
    make_tomogram,
    write_demo,
)

SMALL = (32, 96, 96)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tomo() -> SyntheticTomogram:
    return make_tomogram(7, SMALL)


def _zyx(xyz: np.ndarray) -> tuple[np.ndarray, ...]:
    """Nearest voxel indices (z, y, x) of x/y/z points."""
    return tuple(np.round(xyz[:, ::-1]).astype(int).T)


def test_same_seed_same_bytes_other_seed_differs(tomo: SyntheticTomogram) -> None:
    again = make_tomogram(7, SMALL)
    assert again.volume.tobytes() == tomo.volume.tobytes()
    for f in FEATURES:
        assert again.labels[f].tobytes() == tomo.labels[f].tobytes()
    np.testing.assert_array_equal(again.particles_xyz, tomo.particles_xyz)
    np.testing.assert_array_equal(again.decoys_xyz, tomo.decoys_xyz)
    assert again.params == tomo.params
    other = make_tomogram(8, SMALL)
    assert other.volume.tobytes() != tomo.volume.tobytes()
    assert not np.array_equal(other.labels["membrane"], tomo.labels["membrane"])


def test_types_and_geometry(tomo: SyntheticTomogram) -> None:
    assert tomo.volume.dtype == np.float32 and tomo.volume.shape == SMALL
    assert np.isfinite(tomo.volume).all()
    assert set(tomo.labels) == set(FEATURES)
    for label in tomo.labels.values():
        assert label.dtype == np.uint8 and label.shape == SMALL
        assert set(np.unique(label)) <= {0, 1}
    assert tomo.voxel_size_A == 10.0
    json.dumps(tomo.params)  # provenance must be JSON-serialisable


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("shape", [SMALL, MIN_SHAPE])
def test_small_volumes_hold_every_object(seed: int, shape: tuple[int, int, int]) -> None:
    t = make_tomogram(seed, shape, noise_std=0.0)
    assert t.labels["membrane"].any() and t.labels["carbon"].any()
    assert len(t.particles_xyz) >= 2 and len(t.decoys_xyz) >= 1
    r = t.params["particle_radius_px"]
    for pts in (t.particles_xyz, t.decoys_xyz):  # blobs lie fully inside the volume
        assert (pts >= r).all() and (pts <= np.array(shape[::-1]) - 1 - r).all()
    both = np.concatenate([t.particles_xyz, t.decoys_xyz])
    gaps = np.linalg.norm(both[:, None] - both[None], axis=-1) + np.eye(len(both)) * 1e9
    assert gaps.min() > 2 * r + 1  # no two blobs overlap
    near_carbon = ndimage.distance_transform_edt(t.labels["carbon"] == 0)
    assert (near_carbon[_zyx(both)] > r).all()  # nor do they touch carbon


def test_too_small_shape_is_refused() -> None:
    with pytest.raises(ConfigError, match="too small"):
        make_tomogram(0, (8, 40, 40))


def test_labels_line_up_with_density(tomo: SyntheticTomogram) -> None:
    v, lab = tomo.volume, tomo.labels
    background = v[(lab["membrane"] == 0) & (lab["carbon"] == 0) & (lab["antibody"] == 0)].mean()
    assert v[lab["membrane"] == 1].mean() < background - 0.2  # dense = dark
    assert v[lab["carbon"] == 1].mean() < background - 0.5
    smooth = ndimage.uniform_filter(v, 3)  # the 27 voxels around each centre
    particles, decoys = _zyx(tomo.particles_xyz), _zyx(tomo.decoys_xyz)
    assert (lab["antibody"][particles] == 1).all()
    assert (smooth[particles] < background - 0.5).all()
    assert (smooth[decoys] < background - 0.5).all()  # decoys look the same ...
    ball = np.zeros(v.shape, bool)
    ball[decoys] = True
    ball = ndimage.binary_dilation(ball, iterations=3)
    assert not lab["antibody"][ball].any()  # ... but are not labelled
    n_blobs = ndimage.label(lab["antibody"])[1]
    assert n_blobs == len(tomo.particles_xyz)


def test_particles_sit_22nm_from_membrane_decoys_far() -> None:
    t = make_tomogram(1, (64, 160, 160), noise_std=0.0)
    dist = ndimage.distance_transform_edt(t.labels["membrane"] == 0)
    d_particles = dist[_zyx(t.particles_xyz)]
    assert len(d_particles) >= 5
    assert (d_particles >= 15).all() and (d_particles <= 30).all()
    assert abs(np.median(d_particles) - 22) < 2
    assert (dist[_zyx(t.decoys_xyz)] > 29).all()


def test_annotated_slices_choice() -> None:
    label = np.zeros((30, 4, 4), np.uint8)
    for z, n in [(10, 9), (11, 8), (12, 7), (20, 5), (3, 2), (25, 1)]:
        label[z].flat[:n] = 1
    assert choose_annotated_slices(label, 3) == [3, 10, 20]  # most label, ≥ 4 apart
    assert choose_annotated_slices(label, 5) == [3, 10, 12, 20, 25]  # spacing relaxed
    assert choose_annotated_slices(label, 9) == [3, 10, 11, 12, 20, 25]  # only non-empty ones
    ann = annotation_volume(label, [10, 20])
    assert ann.dtype == np.uint8
    np.testing.assert_array_equal(ann[10], label[10])
    assert ann[[z for z in range(30) if z not in (10, 20)]].sum() == 0


def _annotated(volume: np.ndarray) -> list[int]:
    return [z for z in range(volume.shape[0]) if volume[z].any()]


def test_write_demo_files_and_skip(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    files = write_demo(out, n_tomograms=2, seed=5, shape=SMALL, annotated_slices=4)
    assert [f.name for f in files] == ["tomo_00", "tomo_01"] and not files[0].skipped
    ref = make_tomogram(6, SMALL)  # tomogram i uses seed + i
    f = files[1]
    vol = read_volume(f.tomogram)
    assert vol.data.dtype == np.float32 and vol.voxel_size_A == 10.0
    assert vol.origin_A == (0.0, 0.0, 0.0)
    np.testing.assert_array_equal(vol.data, ref.volume)
    for feature in FEATURES:
        truth = np.asarray(read_volume(f.truth[feature]).data)
        np.testing.assert_array_equal(truth, ref.labels[feature])
        ann = np.asarray(read_volume(f.annotations[feature]).data)
        assert ann.shape == SMALL and set(np.unique(ann)) <= {0, 1}
        slices = _annotated(ann)
        assert slices == f.annotated_z[feature] and len(slices) == 4
        for z in slices:
            assert (ann[z] == 1).any()
            np.testing.assert_array_equal(ann[z], truth[z])
    np.testing.assert_allclose(read_coordinates_tsv(f.particles_tsv), ref.particles_xyz, atol=1e-3)
    np.testing.assert_allclose(read_star(f.particles_star), ref.particles_xyz, atol=1e-3)
    np.testing.assert_allclose(read_coordinates_tsv(f.decoys_tsv), ref.decoys_xyz, atol=1e-3)
    manifest = json.loads((out / "demo.json").read_text())
    assert manifest["seed"] == 5 and manifest["shape"] == list(SMALL)
    entry = manifest["tomograms"][1]
    assert entry["seed"] == 6 and (out / entry["annotations"]["carbon"]).is_file()
    assert entry["params"]["n_particles"] == len(ref.particles_xyz)
    assert not list(out.rglob(".*"))  # no temp files left

    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    again = write_demo(out, n_tomograms=2, seed=5, shape=SMALL, annotated_slices=4)
    assert all(g.skipped for g in again)
    assert [g.annotated_z for g in again] == [g.annotated_z for g in files]
    assert stamps == {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}

    with pytest.raises(AisInputError, match="seed=5"):
        write_demo(out, n_tomograms=2, seed=9, shape=SMALL, annotated_slices=4)

    f.particles_star.unlink()  # an interrupted run: the incomplete tomogram is redone whole
    redo = write_demo(out, n_tomograms=2, seed=5, shape=SMALL, annotated_slices=4)
    assert redo[0].skipped and not redo[1].skipped and f.particles_star.is_file()


def test_demo_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    args = [f"out={out}", "n=1", "seed=3", "shape=32,96,96"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run(
        [sys.executable, "-m", "ais_torch.demo", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "tomo_00" in run.stdout and "wrote" in run.stdout
    expected = [
        "tomo_00.mrc",
        "tomo_00__antibody_truth.tsv",
        "tomo_00__antibody_truth.star",
        "demo.json",
        *(f"truth/tomo_00__{f}.mrc" for f in FEATURES),
        *(f"annotations/tomo_00__{f}.mrc" for f in FEATURES),
    ]
    for name in expected:
        assert (out / name).is_file(), name

    assert demo.main(args) == 0
    assert "kept (already there)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["out"],
        ["out=x", "n=zero"],
        ["out=x", "n=0"],
        ["out=x", "shape=1,2"],
        ["out=x", "colour=red"],
        ["out=x", "overwrite=maybe"],
        ["out=x", "shape=8,8,8"],
    ],
)
def test_demo_command_bad_arguments(
    args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [a.replace("out=x", f"out={tmp_path / 'x'}") for a in args]
    assert demo.main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1 and "error" in captured.err
    assert "Traceback" not in captured.err


def test_demo_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.main(["--help"]) == 0
    assert "out=DIR" in capsys.readouterr().out
