"""Segmentation → .obj meshes: geometry, dust, units/frames, levels, empty input, the command."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ais_torch.commands.mesh import main
from ais_torch.errors import ConfigError
from ais_torch.formats.mrc import write_volume
from ais_torch.formats.obj import read_obj_header
from ais_torch.meshes.surface import probability_level, segmentation_mesh
from ais_torch.viewer.scene import KNOWN_FEATURES

VOXEL_A = 10.0  # 1 nm voxels: radii in voxels read directly as nm


def ball(shape: tuple[int, int, int], centre_zyx: tuple[float, ...], radius: float) -> np.ndarray:
    """Probability ball with a one-voxel linear edge: its 0.5 isosurface is at ``radius``."""
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    cz, cy, cx = centre_zyx
    d = np.sqrt((z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2)
    return np.clip(radius + 0.5 - d, 0.0, 1.0).astype(np.float32)


def test_sphere_radius_area_and_volume_match_geometry() -> None:
    r = 10.0
    mesh = segmentation_mesh(ball((32, 32, 32), (15.5, 15.5, 15.5), r), voxel_size_A=VOXEL_A)
    poly = mesh.to_polydata()
    dist = np.linalg.norm(mesh.vertices, axis=1)  # centre frame: the ball is at the origin
    assert mesh.n_components == 1
    assert poly.n_open_edges == 0  # closed surface
    assert dist.mean() == pytest.approx(r, rel=0.02)
    assert poly.area == pytest.approx(4 * np.pi * r**2, rel=0.03)
    assert poly.volume == pytest.approx(4 / 3 * np.pi * r**3, rel=0.03)
    outward = np.sum(mesh.normals * mesh.vertices, axis=1) > 0
    assert outward.all()


def test_binary_mask_smoothing_removes_staircase_and_keeps_size() -> None:
    r = 10.0
    mask = (ball((32, 32, 32), (15.5, 15.5, 15.5), r) >= 0.5).astype(np.uint8) * 255
    raw = segmentation_mesh(mask, voxel_size_A=VOXEL_A).to_polydata()
    smooth = segmentation_mesh(mask, voxel_size_A=VOXEL_A, smooth=20)
    poly = smooth.to_polydata()
    area = 4 * np.pi * r**2
    assert raw.area > 1.06 * area  # voxel staircase inflates the area
    assert poly.area == pytest.approx(area, rel=0.04)
    assert poly.volume == pytest.approx(4 / 3 * np.pi * r**3, rel=0.04)
    half = segmentation_mesh(mask, voxel_size_A=VOXEL_A, smooth=20, decimate=0.5)
    assert len(half.faces) == pytest.approx(len(smooth.faces) / 2, rel=0.05)
    assert half.to_polydata().area == pytest.approx(area, rel=0.04)


def test_dust_below_min_size_is_removed() -> None:
    vol = ball((32, 48, 48), (16, 24, 24), 8.0)
    specks = [(3, 3, 3), (28, 40, 5), (5, 42, 42)]
    for z, y, x in specks:
        vol[z : z + 2, y : y + 2, x : x + 2] = 1.0  # 8 voxels each
    everything = segmentation_mesh(vol, voxel_size_A=VOXEL_A, min_size=0)
    clean = segmentation_mesh(vol, voxel_size_A=VOXEL_A, min_size=9)
    assert (everything.n_components, everything.n_dust) == (4, 0)
    assert (clean.n_components, clean.n_dust) == (1, 3)
    centre = np.array([24.0, 24.0, 16.0]) - np.array([48, 48, 32]) / 2  # x, y, z nm
    dist = np.linalg.norm(clean.vertices - centre, axis=1)
    assert dist.max() < 8.6  # only the ball's surface is left


def test_units_and_frames() -> None:
    vol = ball((24, 32, 40), (10, 12, 30), 5.0)
    origin = (-200.0, 50.0, 1000.0)
    nm = segmentation_mesh(vol, voxel_size_A=8.0, units="nm")
    ang = segmentation_mesh(vol, voxel_size_A=8.0, units="A")
    np.testing.assert_allclose(ang.vertices, 10 * nm.vertices, rtol=1e-12)
    # centre frame (the original's): (index − shape/2) · voxel size
    expected_nm = (np.array([30, 12, 10]) - np.array([40, 32, 24]) / 2) * 0.8
    np.testing.assert_allclose(nm.vertices.mean(axis=0), expected_nm, atol=0.05)
    # map frame: origin + index · voxel size, in Å — overlays the map in ChimeraX
    onmap = segmentation_mesh(vol, voxel_size_A=8.0, units="A", frame="map", origin_A=origin)
    expected_a = np.array(origin) + np.array([30, 12, 10]) * 8.0
    np.testing.assert_allclose(onmap.vertices.mean(axis=0), expected_a, atol=0.5)


def test_level_as_probability_or_grey_on_any_value_scale() -> None:
    prob = ball((24, 24, 24), (11.6, 12.3, 11.8), 6.0)  # off-grid: no voxel exactly at 0.5
    grey = np.round(prob * 255).astype(np.uint16)  # as the original writes (mode 6)
    mask01 = (prob >= 0.5).astype(np.int8)  # demo truth files: 0/1 int8
    a = segmentation_mesh(prob, voxel_size_A=VOXEL_A, level=0.5)
    b = segmentation_mesh(grey, voxel_size_A=VOXEL_A, level=127.5)
    c = segmentation_mesh(grey, voxel_size_A=VOXEL_A, level=0.5)
    d = segmentation_mesh(mask01, voxel_size_A=VOXEL_A, level=0.5)
    np.testing.assert_allclose(b.vertices, c.vertices)
    np.testing.assert_allclose(a.vertices, b.vertices, atol=0.1)  # 1/255 quantisation
    assert d.n_components == 1 and not d.is_empty
    assert probability_level(128) == pytest.approx(128 / 255)
    for bad in (0, -0.2, 256, float("nan")):
        with pytest.raises(ConfigError):
            probability_level(bad)


def test_binning_keeps_the_full_resolution_frame() -> None:
    vol = ball((32, 48, 48), (16, 20, 28), 10.0)
    full = segmentation_mesh(vol, voxel_size_A=VOXEL_A)
    binned = segmentation_mesh(vol, voxel_size_A=VOXEL_A, bin=2)
    assert len(binned.faces) < len(full.faces) / 2
    np.testing.assert_allclose(binned.vertices.mean(0), full.vertices.mean(0), atol=0.3)
    radius = np.linalg.norm(binned.vertices - full.vertices.mean(0), axis=1).mean()
    assert radius == pytest.approx(10.0, rel=0.05)


def test_empty_segmentation_gives_an_empty_valid_obj(tmp_path: Path) -> None:
    import pyvista as pv

    mesh = segmentation_mesh(np.zeros((8, 8, 8), np.float32), voxel_size_A=VOXEL_A)
    assert mesh.is_empty and mesh.n_components == 0
    path = mesh.to_obj(tmp_path / "t__x.obj", colour=(1.0, 0.0, 0.0))
    lines = path.read_text().splitlines()
    assert lines[0] == "# colour 1.000 0.000 0.000"
    assert all(line.startswith("#") for line in lines)
    assert pv.read(path).n_points == 0


def test_obj_round_trip_in_the_originals_layout(tmp_path: Path) -> None:
    import pyvista as pv

    mesh = segmentation_mesh(ball((20, 20, 20), (10, 10, 10), 5.0), voxel_size_A=VOXEL_A)
    path = mesh.to_obj(tmp_path / "t__ball.obj", colour=(0.1, 0.2, 0.3), source="t__ball.mrc")
    text = path.read_text().splitlines()
    assert text[0] == "# colour 0.100 0.200 0.300"
    assert sum(t.startswith("v ") for t in text) == len(mesh.vertices)
    assert sum(t.startswith("vn ") for t in text) == len(mesh.vertices)
    first_face = next(t for t in text if t.startswith("f "))
    a, b, c = (int(x.split("//")[0]) for x in first_face.split()[1:])
    assert (a - 1, b - 1, c - 1) == tuple(mesh.faces[0])
    head = read_obj_header(path)
    assert (head["units"], head["frame"], head["shape_zyx"]) == ("nm", "center", "20,20,20")
    back = pv.read(path)
    assert back.n_points == len(mesh.vertices) and back.n_cells == len(mesh.faces)
    np.testing.assert_allclose(back.points, mesh.vertices, atol=1e-4)
    assert not list(tmp_path.glob(".*partial"))  # atomic write left nothing behind


def test_command_meshes_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seg = tmp_path / "seg"
    seg.mkdir()
    membrane = ball((24, 32, 32), (12, 16, 16), 8.0)
    membrane[2:4, 2:4, 2:4] = 1.0  # one 8-voxel speck of dust
    write_volume(
        seg / "tomo__membrane.mrc", np.round(membrane * 255).astype(np.uint8), voxel_size_A=VOXEL_A
    )
    write_volume(seg / "tomo__antibody.mrc", np.zeros((24, 32, 32), np.uint8), voxel_size_A=VOXEL_A)
    out = tmp_path / "obj"
    assert main([f"data={seg}", f"out={out}", "min_size=20", "level=128", "units=A"]) == 0
    said = capsys.readouterr().out
    assert "tomo__membrane.mrc: 1 surface(s)" in said and "1 dust" in said
    assert "tomo__antibody.mrc: nothing at or above level" in said
    membrane_obj = (out / "tomo__membrane.obj").read_text().splitlines()
    r, g, b = KNOWN_FEATURES["membrane"]
    assert membrane_obj[0] == f"# colour {r:.3f} {g:.3f} {b:.3f}"
    xyz = np.array([[float(v) for v in t.split()[1:]] for t in membrane_obj if t.startswith("v ")])
    assert np.linalg.norm(xyz, axis=1).mean() == pytest.approx(80.0, rel=0.03)  # 8 nm in Å
    assert (out / "tomo__antibody.obj").is_file()
    # only one feature, written next to the input
    assert main([f"data={seg}", "feature=membrane"]) == 0
    assert (seg / "tomo__membrane.obj").is_file() and not (seg / "tomo__antibody.obj").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["level=300"], "level=300"),
        (["units=pm"], "units='pm'"),
        (["feature=ribosome"], "<tomo>__ribosome.mrc in"),
        (["feature=ribosome"], "(features there: membrane)"),
        (["decimate=1.5"], "decimate"),
    ],
)
def test_command_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    write_volume(tmp_path / "t__membrane.mrc", np.zeros((8, 8, 8), np.uint8), voxel_size_A=10.0)
    with pytest.raises(SystemExit) as exit_:
        main([f"data={tmp_path}", *args])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err
