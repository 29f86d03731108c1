"""``ais-torch view data=project.json``: one copick run as the same Scene files make — tomogram
(read lazily, from its pyramid), segmentations by object and colour, picks in voxels with the
object's radius — and rendered off screen."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("copick")

import copick
from copick_project import make_project

from ais_torch.commands.view import main
from ais_torch.errors import AisInputError
from ais_torch.formats import copick as cp
from ais_torch.viewer.copick_run import RunChoice, load_copick_scene
from ais_torch.viewer.scene import KNOWN_FEATURES, PICK_COLOURS, build_scene

SHAPE = (16, 48, 64)
OBJECTS = [
    {"name": "membrane", "is_particle": False, "label": 1, "color": [255, 0, 0, 255]},
    {"name": "antibody", "is_particle": True, "label": 2, "radius": 60.0},
    {"name": "ribosome", "is_particle": True, "label": 3},
]
PICKS_XYZ = np.array([[10.0, 12.0, 4.0], [50.0, 30.0, 11.0]])  # voxels at 10 Å


def _tomogram(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vol = rng.normal(size=SHAPE).astype(np.float32)
    vol[:, 22:26, :] += 4.0
    return vol


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TS_001: 10 Å (wbp + a 3-level denoised), 20 Å (wbp); our membrane segmentation, a
    multilabel one by someone else, antibody picks. TS_002: a 10 Å wbp only."""
    root = tmp_path_factory.mktemp("copick_view")
    runs = {
        "TS_001": {10.0: {"wbp": _tomogram(1)}, 20.0: {"wbp": _tomogram(2)[::2, ::2, ::2]}},
        "TS_002": {10.0: {"wbp": _tomogram(3)}},
    }
    config = make_project(root, runs, objects=OBJECTS)
    run = copick.from_file(str(config)).get_run("TS_001")
    run.get_voxel_spacing(10.0).new_tomogram("denoised").from_numpy(_tomogram(4), levels=3)
    membrane = np.zeros(SHAPE, np.uint8)
    membrane[:, 22:26, :] = 255  # our 0-255 grey output
    cp.write_segmentation(config, "TS_001", "membrane", membrane, voxel_size_A=10.0)
    labels = np.zeros(SHAPE, np.uint8)
    labels[4:8, 5:12, 5:12] = 3  # ribosome label
    seg = run.new_segmentation(
        voxel_size=10.0, name="particles", session_id="1", user_id="someone", is_multilabel=True
    )
    seg.from_numpy(labels)
    cp.write_picks(config, "TS_001", "antibody", PICKS_XYZ, voxel_size_A=10.0)
    return config


def test_a_run_becomes_a_scene(project: Path) -> None:
    said: list[str] = []
    scene = load_copick_scene(project, RunChoice(tomo_type="denoised"), say=said.append)
    assert scene.title == "TS_001 · 10 Å · denoised"
    assert said[0].endswith("showing run TS_001 of 2; copick.runs=[NAME] for another")
    assert "at 10 Å: tomogram denoised, 2 segmentation(s), 1 pick set(s)" in said[-1]
    assert scene.shape_zyx == SHAPE and scene.voxel_size_A == 10.0
    np.testing.assert_array_equal(np.asarray(scene.tomogram[3:5]), _tomogram(4)[3:5])
    assert sorted(scene.tomogram_levels) == [2, 4]  # the pyramid, by binning factor
    assert scene.tomogram_levels[2].shape == (8, 24, 32)

    features = {f.name: f for f in scene.features}
    assert sorted(features) == ["membrane", "ribosome"]  # the multilabel one split by object
    assert features["membrane"].colour == (1.0, 0.0, 0.0)  # the object's colour in the config
    assert features["ribosome"].colour == KNOWN_FEATURES["ribosome"]  # none given: ours
    assert int(np.asarray(features["ribosome"].data).sum()) == 4 * 7 * 7
    (picks,) = scene.picks
    assert picks.name == "antibody" and picks.colour == PICK_COLOURS[0]
    np.testing.assert_allclose(picks.xyz, PICKS_XYZ)  # Å in the project, voxels here
    assert picks.radius_nm == pytest.approx(6.0)  # the object's 60 Å

    mine = load_copick_scene(
        project, RunChoice(tomo_type="wbp", user_id="ais_torch"), pick_radius_nm=2.0
    )  # copick's spelling of the id matches too
    assert [f.name for f in mine.features] == ["membrane"]
    assert mine.picks[0].radius_nm == 2.0
    assert not mine.tomogram_levels  # the wbp store has one level


def test_choosing_runs_spacings_and_types(project: Path) -> None:
    said: list[str] = []
    other = load_copick_scene(project, RunChoice(runs=("TS_002", "TS_001")), say=said.append)
    assert other.title == "TS_002 · 10 Å · wbp" and not other.features and not other.picks
    assert said[0].endswith("view shows one run at a time: TS_002 (not TS_001)")
    coarse = load_copick_scene(project, RunChoice(voxel_spacing=20.0), say=said.append)
    assert coarse.shape_zyx == (8, 24, 32) and coarse.voxel_size_A == 20.0
    assert "segmentations also at 10 Å" in said[-1]
    default = load_copick_scene(project, RunChoice(), say=said.append)  # where the segs are
    assert default.voxel_size_A == 10.0 and default.title.endswith("denoised")
    assert "tomogram denoised (also wbp: copick.tomo_type=)" in said[-2]

    with pytest.raises(AisInputError, match=r"no run 'TS_9' \(runs: TS_001, TS_002\)"):
        load_copick_scene(project, RunChoice(runs=("TS_9",)))
    with pytest.raises(AisInputError, match=r"no voxel spacing 7 Å \(there: 10, 20 Å\)"):
        load_copick_scene(project, RunChoice(voxel_spacing=7.0))
    with pytest.raises(AisInputError, match=r"no tomogram 'iso' \(types: denoised, wbp\)"):
        load_copick_scene(project, RunChoice(tomo_type="iso"))


# --------------------------------------------------------------------------- rendering


@pytest.fixture(scope="module")
def offscreen() -> None:
    """Skip, with the reason, when no off-screen OpenGL context exists (as test_scene.py)."""
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


class CountingVolume:
    """A tomogram that counts the voxels read from it."""

    def __init__(self, data: object) -> None:
        self.data, self.read = data, 0

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)  # type: ignore[attr-defined]

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        out = np.asarray(self.data[key])  # type: ignore[index]
        self.read += out.size
        return out


@pytest.mark.viewer
def test_render_reads_only_the_slice_shown(offscreen: None, project: Path) -> None:
    from test_scene import colour_pixels

    scene = load_copick_scene(
        project, RunChoice(tomo_type="denoised"), window_size=(480, 360), bin=2, pick_opacity=1.0
    )
    full, level2 = CountingVolume(scene.tomogram), CountingVolume(scene.tomogram_levels[2])
    scene.tomogram, scene.tomogram_levels = full, {2: level2}
    img = build_scene(scene, off_screen=True).screenshot(return_img=True)
    assert full.read == 0  # bin 2: cut from the stored 2x level, never from level 0
    assert level2.read == 24 * 32  # one slice of the 8 x 24 x 32 level
    assert colour_pixels(img, (1.0, 0.0, 0.0)) > 100, "membrane (red) not visible"
    assert colour_pixels(img, PICK_COLOURS[0]) > 50, "picks not visible"


@pytest.mark.viewer
def test_command_screenshot_of_a_run(
    offscreen: None,
    project: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from PIL import Image

    monkeypatch.delenv("DISPLAY", raising=False)
    shot = tmp_path / "run.png"
    args = [f"data={project}", "copick.runs=[TS_001]", "copick.tomo_type=wbp", "window=320x240"]
    assert main([*args, f"screenshot={shot}"]) == 0
    with Image.open(shot) as png:
        assert png.size == (320, 240)
    assert "run TS_001 at 10 Å: tomogram wbp, 2 segmentation(s)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main([f"data={project}", "copick.runs=[TS_404]", f"screenshot={shot}"])
    assert "no run 'TS_404' (runs: TS_001, TS_002)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([f"data={project}", f"segmentations={shot}", f"screenshot={shot}"])
    assert "is a copick project; segmentations= cannot be added" in capsys.readouterr().err
