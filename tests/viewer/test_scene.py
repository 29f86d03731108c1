"""The 3D viewer: colours, file discovery, mesh placement, and off-screen renders of the demo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ais_torch.commands.view import main
from ais_torch.formats.coordinates import write_coordinates_tsv, write_copick_json, write_star
from ais_torch.formats.mrc import write_volume
from ais_torch.meshes.surface import segmentation_mesh
from ais_torch.training.synthetic import FEATURES, make_tomogram
from ais_torch.viewer.scene import (
    KNOWN_FEATURES,
    PALETTE,
    PICK_COLOURS,
    Scene,
    assign_colours,
    feature_colour,
    load_scene,
    read_mesh,
    scan_folder,
    split_name,
)

# --------------------------------------------------------------------------- no rendering


def test_feature_colours_are_stable_and_distinct() -> None:
    assert feature_colour("Membrane") == KNOWN_FEATURES["membrane"]
    assert feature_colour("vimentin") == feature_colour("vimentin")  # no per-run hash salt
    names = [f"feature{i}" for i in range(len(PALETTE))]
    colours = assign_colours(names)
    assert len(set(colours.values())) == len(PALETTE)
    assert assign_colours(names) == colours
    fixed = assign_colours(["membrane", "carbon"], {"Membrane": (0.2, 0.2, 0.2)})
    assert fixed == {"membrane": (0.2, 0.2, 0.2), "carbon": KNOWN_FEATURES["carbon"]}


def test_split_name_and_folder_scan(tmp_path: Path) -> None:
    assert split_name("a/tomo_01__Membrane.mrc") == ("tomo_01", "Membrane")
    assert split_name("tomo_01.mrc") == ("tomo_01", "tomo_01")
    for name in ("t1.mrc", "t1__membrane.mrc", "t1__carbon.mrc", "t2.mrc", "t2__membrane.mrc"):
        (tmp_path / name).write_bytes(b"")
    for name in ("t1__membrane_coords.star", "t1__membrane.obj", "t2__x_coords.txt", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    found = scan_folder(tmp_path)
    assert found.tomogram == tmp_path / "t1.mrc"
    assert [p.name for p in found.segmentations] == ["t1__carbon.mrc", "t1__membrane.mrc"]
    assert [p.name for p in found.picks] == ["t1__membrane_coords.star"]
    assert [p.name for p in found.meshes] == ["t1__membrane.obj"]
    assert found.others == ["t2"]
    assert [p.name for p in scan_folder(tmp_path, "t2").picks] == ["t2__x_coords.txt"]


def test_scene_reads_picks_in_every_coordinate_format(tmp_path: Path) -> None:
    """The viewer reads picks with the formats reader: .star, .tsv, headerless .txt, copick."""
    xyz = np.array([[1.0, 2.0, 3.0], [40.0, 50.0, 6.0]])
    write_volume(tmp_path / "t.mrc", np.zeros((8, 60, 50), np.float32), voxel_size_A=5.0)
    write_star(tmp_path / "t__f_coords.star", xyz, tomo_name="t")
    write_coordinates_tsv(tmp_path / "t__f.tsv", xyz)
    (tmp_path / "t__f_coords.txt").write_text("1\t2\t3\n40\t50\t6\n")  # original 1.0.40 style
    # copick in Å at a different spacing: placed by the tomogram's voxel size
    write_copick_json(
        tmp_path / "t__f_coords.json", xyz * 0.5, voxel_size_A=10.0, object_name="f", run_name="t"
    )
    found = scan_folder(tmp_path)
    assert sorted(p.suffix for p in found.picks) == [".json", ".star", ".tsv", ".txt"]
    scene = load_scene(tomogram=found.tomogram, picks=found.picks)
    for layer in scene.picks:
        np.testing.assert_allclose(layer.xyz, xyz, err_msg=layer.name)


def test_default_display_bin_keeps_largest_side_at_most_256() -> None:
    assert Scene(shape_zyx=(100, 200, 256), voxel_size_A=10).display_bin() == 1
    assert Scene(shape_zyx=(300, 928, 928), voxel_size_A=10).display_bin() == 4
    assert Scene(shape_zyx=(300, 928, 928), voxel_size_A=10, bin=2).display_bin() == 2


def test_obj_meshes_land_on_the_segmentation(tmp_path: Path) -> None:
    """.obj files in either frame/unit are placed exactly where the isosurface is drawn."""
    z, y, x = np.ogrid[:24, :32, :40]
    vol = np.clip(6.5 - np.sqrt((z - 9) ** 2 + (y - 20) ** 2 + (x - 13) ** 2), 0, 1)
    origin = (100.0, -40.0, 7.0)
    in_scene = segmentation_mesh(vol, voxel_size_A=8.0, frame="map")  # the viewer's frame
    for units, frame in (("nm", "center"), ("A", "map")):
        mesh = segmentation_mesh(vol, voxel_size_A=8.0, units=units, frame=frame, origin_A=origin)
        path = mesh.to_obj(tmp_path / f"t__{units}{frame}.obj")
        poly = read_mesh(path, (24, 32, 40), 8.0, origin)
        np.testing.assert_allclose(poly.points, in_scene.vertices, atol=1e-3)


# --------------------------------------------------------------------------- rendering


@pytest.fixture(scope="module")
def offscreen() -> None:
    """Skip the rendering tests, with the reason, when no off-screen OpenGL context exists."""
    pv = pytest.importorskip("pyvista")
    try:
        plotter = pv.Plotter(off_screen=True, window_size=(32, 32))
        plotter.add_mesh(pv.Sphere())
        img = plotter.screenshot(return_img=True)
        plotter.close()
    except Exception as err:  # VTK raises RuntimeError or worse when it has no context
        pytest.skip(f"off-screen rendering unavailable (EGL/OSMesa): {err}")
    if img is None or np.ptp(img) == 0:
        pytest.skip("off-screen rendering produced a blank image (no working OpenGL)")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo tomogram with truth written as <tomo>__<feature>.mrc (uint8 × 255)."""
    root = tmp_path_factory.mktemp("viewer_demo")
    tomo = make_tomogram(3, shape=(32, 96, 96))
    write_volume(root / "tomo_03.mrc", tomo.volume, voxel_size_A=tomo.voxel_size_A)
    for feature in FEATURES:
        label = tomo.labels[feature].astype(np.uint8) * 255
        write_volume(root / f"tomo_03__{feature}.mrc", label, voxel_size_A=tomo.voxel_size_A)
    # the decoys are away from every feature, so their spheres hide no surface
    write_star(root / "tomo_03__decoys_coords.star", tomo.decoys_xyz, tomo_name="tomo_03")
    return root


def colour_pixels(img: np.ndarray, colour: tuple[float, float, float]) -> int:
    """Pixels whose RGB points the way ``colour`` does (any shading), legend area excluded."""
    h, w, _ = img.shape
    img = img.copy()
    img[: int(0.35 * h), : int(0.7 * w)] = 0  # the legend (upper left) uses the same colours
    px = img.reshape(-1, 3).astype(float) / 255.0
    c = np.asarray(colour)
    norm = np.linalg.norm(px, axis=1)
    cos = px @ c / (norm * np.linalg.norm(c) + 1e-9)
    return int(np.count_nonzero((cos > 0.995) & (norm > 0.1)))


@pytest.mark.viewer
def test_demo_renders_every_feature_and_the_picks(offscreen: None, demo: Path) -> None:
    from ais_torch.viewer.scene import build_scene

    found = scan_folder(demo)
    scene = load_scene(
        tomogram=found.tomogram,
        segmentations=found.segmentations,
        picks=found.picks,
        window_size=(640, 480),
        pick_opacity=1.0,  # opaque, so the pick colour is exact (default see-through)
    )
    plotter = build_scene(scene, off_screen=True)
    img = plotter.screenshot(return_img=True)
    plotter.close()
    assert img.shape == (480, 640, 3)
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 500  # not blank: slice + surfaces
    for layer in scene.features:
        assert colour_pixels(img, layer.colour) > 100, f"{layer.name} not visible"
    assert colour_pixels(img, PICK_COLOURS[0]) > 100, "picks not visible"


@pytest.mark.viewer
def test_slider_moves_the_slice_and_checkboxes_hide_layers(offscreen: None, demo: Path) -> None:
    from ais_torch.viewer.scene import build_scene

    found = scan_folder(demo)
    scene = load_scene(tomogram=found.tomogram, segmentations=found.segmentations[:1], bin=2)
    plotter = build_scene(scene, off_screen=True, widgets=True)

    def slice_z() -> float:
        plotter.render()
        return plotter.actors["tomogram"].GetBounds()[4]

    assert slice_z() == pytest.approx((16 + 0.5) * 1.0)  # middle of 32 at bin 2, in nm
    (slider,) = plotter.widgets.slider_widgets
    slider.GetRepresentation().SetValue(4.0)
    slider.InvokeEvent("InteractionEvent")
    assert slice_z() == pytest.approx((4 + 0.5) * 1.0)
    (box,) = plotter.widgets.button_widgets
    box.GetRepresentation().SetState(0)
    box.InvokeEvent("StateChangedEvent")
    assert not plotter.actors[f"feature:{scene.features[0].name}"].GetVisibility()
    plotter.close()


@pytest.mark.viewer
def test_command_writes_screenshot_and_turntable_without_display(
    offscreen: None, demo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import Image

    monkeypatch.delenv("DISPLAY", raising=False)
    shot, gif = tmp_path / "out.png", tmp_path / "turn.gif"
    args = [f"data={demo}", "window=320x240", "level=membrane:0.6", "min_size=10"]
    assert main([*args, f"screenshot={shot}", f"turntable={gif}", "frames=4"]) == 0
    with Image.open(shot) as png:
        assert png.format == "PNG" and png.size == (320, 240)
    with Image.open(gif) as movie:
        assert movie.format == "GIF" and movie.n_frames == 4
    assert not list(tmp_path.glob(".*partial*"))


def test_command_without_display_or_output_explains(
    demo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("ais_torch.viewer.scene.has_display", lambda: False)
    with pytest.raises(SystemExit) as exit_:
        main([f"data={demo}"])
    assert exit_.value.code == 2
    assert "screenshot=out.png" in capsys.readouterr().err
