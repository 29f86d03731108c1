"""copick projects in and out: choosing runs/spacings/types, lazy reads, atomic writes, one-line
errors that list what the project has."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("copick")

import copick
from copick_project import make_project, tomogram

from ais_torch.errors import AisInputError
from ais_torch.formats import copick as cp


@pytest.fixture
def project(tmp_path: Path) -> Path:
    runs = {
        "TS_001": {10.0: {"wbp": tomogram(seed=1)}, 20.0: {"wbp": tomogram((3, 20, 24), seed=2)}},
        "TS_002": {10.0: {"wbp": tomogram(seed=3), "denoised": tomogram(seed=4)}},
    }
    return make_project(tmp_path / "proj", runs)


def test_spacing_nearest_the_model_and_lazy_volume(project: Path) -> None:
    refs = cp.find_tomograms(project, cp.CopickOptions(runs=("TS_001",)), target_A=17.0)
    assert [(r.run, r.voxel_size_A, r.tomo_type, r.shape) for r in refs] == [
        ("TS_001", 20.0, "wbp", (3, 20, 24))
    ]
    volume = refs[0].open()
    assert type(volume.data).__module__.startswith("zarr")  # lazy: nothing read yet
    np.testing.assert_array_equal(np.asarray(volume.data[1:3]), tomogram((3, 20, 24), seed=2)[1:3])
    assert volume.voxel_size_A == 20.0 and volume.shape == (3, 20, 24)


def test_requested_spacing_and_type(project: Path) -> None:
    opts = cp.CopickOptions(runs=("TS_002",), voxel_spacing=10.0, tomo_type="denoised")
    (ref,) = cp.find_tomograms(project, opts, target_A=None)
    np.testing.assert_array_equal(np.asarray(ref.open().data[:]), tomogram(seed=4))


@pytest.mark.parametrize(
    ("opts", "target", "message"),
    [
        (cp.CopickOptions(runs=("TS_009",)), 10.0, "no run 'TS_009' (runs: TS_001, TS_002)"),
        (cp.CopickOptions(runs=("TS_001",)), 50.0, "no voxel spacing near the model's 50 Å"),
        (cp.CopickOptions(runs=("TS_001",), voxel_spacing=7.0), 10.0, "(there: 10, 20 Å)"),
        (cp.CopickOptions(runs=("TS_002",)), 10.0, "2 tomogram types (denoised, wbp)"),
        (
            cp.CopickOptions(runs=("TS_001",), tomo_type="ctf"),
            10.0,
            "no tomogram 'ctf' (types: wbp)",
        ),
    ],
)
def test_bad_selection_is_one_line_listing_what_exists(
    project: Path, opts: cp.CopickOptions, target: float, message: str
) -> None:
    with pytest.raises(AisInputError) as err:
        cp.find_tomograms(project, opts, target)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_not_a_copick_config(tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"hello": 1}))
    with pytest.raises(AisInputError, match="not a copick project config"):
        cp.open_project(other)
    with pytest.raises(AisInputError, match="copick config not found"):
        cp.open_project(tmp_path / "missing.json")
    assert not cp.is_copick_config(other)


def test_objects_are_matched_or_listed(project: Path) -> None:
    root = cp.open_project(project)
    assert cp.object_for_title(root, "Membrane", "x") == "membrane"
    with pytest.raises(AisInputError, match=r"objects: antibody, membrane"):
        cp.object_for_title(root, "Carbon", "x")
    with pytest.raises(AisInputError, match=r"no object 'ribosome' \(objects: antibody, membrane"):
        cp.write_picks(project, "TS_001", "ribosome", [[1, 2, 3]], voxel_size_A=10.0)


def test_segmentation_written_atomically_and_read_by_copick(project: Path) -> None:
    values = (np.arange(6 * 40 * 48) % 256).astype(np.uint8).reshape(6, 40, 48)
    where = cp.write_segmentation(project, "TS_001", "membrane", values, voxel_size_A=10.0)
    assert where.endswith("Segmentations/10.000_ais-torch_0_membrane.zarr")
    folder = Path(where).parent
    assert [p.name for p in folder.iterdir()] == [Path(where).name]  # no hidden leftovers
    run = copick.from_file(str(project)).get_run("TS_001")
    (seg,) = run.get_segmentations(name="membrane", user_id="ais-torch", session_id="0")
    np.testing.assert_array_equal(seg.numpy(), values)
    assert seg.voxel_size == 10.0
    assert cp.segmentation_exists(project, "TS_001", "membrane", 10.0)
    volume = cp.read_segmentation(project, "TS_001", "membrane")
    np.testing.assert_array_equal(np.asarray(volume.data[:]), values)
    # replacing keeps one store and the new values
    cp.write_segmentation(project, "TS_001", "membrane", values // 2, voxel_size_A=10.0)
    np.testing.assert_array_equal(
        np.asarray(cp.read_segmentation(project, "TS_001", "membrane").data[:]), values // 2
    )
    assert len(list(folder.iterdir())) == 1
    with pytest.raises(AisInputError, match="set overwrite=true"):
        cp.write_segmentation(
            project, "TS_001", "membrane", values, voxel_size_A=10.0, overwrite=False
        )


def test_missing_segmentation_lists_what_is_there(project: Path) -> None:
    with pytest.raises(AisInputError, match=r"no segmentation 'antibody' .*segmentations: none"):
        cp.read_segmentation(project, "TS_001", "antibody")


def test_picks_in_angstrom_with_transforms(project: Path) -> None:
    xyz = np.array([[1.0, 2.0, 3.0], [10.5, 20.0, 4.0]])
    rot = np.stack([np.eye(3), np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])])
    cp.write_picks(
        project, "TS_001", "antibody", xyz, voxel_size_A=10.0, rotations=rot, scores=[0.5, 2.0]
    )
    run = copick.from_file(str(project)).get_run("TS_001")
    (picks,) = run.get_picks(object_name="antibody", user_id="ais-torch", session_id="0")
    points, transforms = picks.numpy()
    np.testing.assert_allclose(points, xyz * 10.0)
    np.testing.assert_allclose(transforms[:, :3, :3], rot)
    assert picks.trust_orientation and list(picks.scores()) == [0.5, 2.0]


def test_read_only_overlay_is_one_line(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cp.os, "access", lambda *_: False)  # as a non-root user would see it
    with pytest.raises(AisInputError, match=r"overlay .* is not writable; point the config"):
        cp.write_picks(project, "TS_001", "antibody", [[1, 2, 3]], voxel_size_A=10.0)
    assert not (project.parent / "overlay" / "ExperimentRuns" / "TS_001" / "Picks").exists()
