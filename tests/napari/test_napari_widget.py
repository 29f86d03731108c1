"""The Ais widget on demo data: the whole loop, and bad input that must not crash the viewer.

The loop runs on a ``ViewerModel`` (no canvas, Qt's offscreen platform is enough); the
screenshot for docs/napari.md needs a real viewer under Xvfb (``xvfb-run -a pytest -m gui``).
Set ``AIS_TORCH_DOC_IMAGES=1`` to (re)write docs/img/napari_loop.png.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from ais_torch.errors import AisInputError
from ais_torch.formats.mrc import read_volume
from ais_torch.training.synthetic import write_demo

pytestmark = pytest.mark.gui
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "img"
WAIT_MS = 120_000


DOC_RUN = bool(os.environ.get("AIS_TORCH_DOC_IMAGES"))
"""A bigger tomogram and a longer run for the docs' picture; the test itself stays tiny."""
SHAPE = (32, 192, 192) if DOC_RUN else (24, 80, 80)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("demo")
    [files] = write_demo(folder, n_tomograms=1, shape=SHAPE, annotated_slices=3)
    return files


def _viewer_model():
    from napari.components import ViewerModel

    return ViewerModel()


def _open(viewer, path: Path) -> None:
    from ais_torch.napari.io import read_paths

    for data, kwargs, kind in read_paths(str(path)):
        getattr(viewer, f"add_{kind}")(data, **kwargs)


def _paint_demo_slices(widget, demo) -> tuple[object, list[int]]:
    """What a user paints: the demo's annotated slices (1 feature, 0 around it)."""
    layer = widget.add_feature()
    truth = read_volume(demo.annotations["membrane"]).data
    zs = demo.annotated_z["membrane"]
    data = layer.data
    for z in zs:
        data[z] = truth[z]
        data[z][truth[z] == 0] = 0
    data[zs[0], 0, 0] = 2  # an unsure pixel
    layer.data = data
    return layer, zs


def _loop(qtbot, viewer, demo, tmp_path: Path, *, dock: bool = False):
    from ais_torch.napari.widget import AisWidget

    _open(viewer, demo.tomogram)
    widget = AisWidget(viewer)
    if dock:
        viewer.window.add_dock_widget(widget, name="Ais", area="right")
    widget.out_folder.value = str(tmp_path / "out")
    widget.feature.value = "Membrane"
    widget.box_size.value = 32
    widget.arch.value = "eman2"
    widget.epochs.value = 1
    widget.batch_size.value = 4
    batches = 60 if DOC_RUN else 3
    widget.extra_overrides = [f"trainer.limit_train_batches={batches}", "trainer.accelerator=cpu"]

    labels, zs = _paint_demo_slices(widget, demo)
    counts = widget.update_counts()
    assert counts.startswith(f"{len(zs)} slices") and "positive" in counts, counts

    worker = widget.train()
    assert worker is not None
    qtbot.waitUntil(lambda: widget.last_model is not None, timeout=WAIT_MS)
    assert widget.last_model.name == "Membrane.scnm"
    assert "ais-torch train data=annotations" in widget.last_command
    assert f"step {batches}/{batches}" in widget.train_log
    assert widget.loss.value.split()[0] == f"{widget.losses[-1]:.4f}"
    saved = tmp_path / "out" / "annotations" / "tomo_00__Membrane.mrc"
    assert saved.is_file()

    viewer.dims.set_current_step(0, zs[1])
    qtbot.waitUntil(lambda: "Membrane preview" in viewer.layers, timeout=WAIT_MS)
    preview = viewer.layers["Membrane preview"]
    qtbot.waitUntil(lambda: preview.metadata.get("ais_z") == zs[1], timeout=WAIT_MS)
    assert preview.data.shape == SHAPE[1:] and preview.data.dtype == np.float32

    widget.threshold.value = 0.3
    n = widget.copy_prediction()
    expected = (preview.data >= 0.3).astype(np.uint8)
    np.testing.assert_array_equal(labels.data[zs[1]], expected)
    assert n == int(expected.sum())

    widget.segment()
    qtbot.waitUntil(lambda: widget.last_segmentation is not None, timeout=WAIT_MS)
    assert widget.last_segmentation == tmp_path / "out" / "tomo_00__Membrane.mrc"
    assert "tomo_00__Membrane" in viewer.layers
    assert viewer.layers["tomo_00__Membrane"].rendering == "iso"

    points = widget.pick()
    assert points is not None and points.name == "tomo_00__Membrane picks"
    assert (tmp_path / "out" / "tomo_00__Membrane.star").is_file()
    txt = (tmp_path / "out" / "tomo_00__Membrane.txt").read_text().splitlines()
    assert len(txt) == len(points.data)
    return widget


def test_the_loop(qtbot, request: pytest.FixtureRequest, demo, tmp_path: Path) -> None:
    """open → paint → train 1 short epoch → preview → copy → segment → pick → screenshot.

    Under Xvfb a real viewer with the docked widget (its screenshot is the docs' picture);
    without a display the same loop on a ``ViewerModel``.
    """
    real = os.environ.get("QT_QPA_PLATFORM") != "offscreen"
    viewer = request.getfixturevalue("make_napari_viewer")() if real else _viewer_model()
    widget = _loop(qtbot, viewer, demo, tmp_path, dock=real)
    if real:
        viewer.layers.selection.active = viewer.layers["Membrane"]
        viewer.window.resize(1500, 950)
        viewer.reset_view()
        image = viewer.screenshot(canvas_only=False)
        assert image.ndim == 3 and image.shape[2] == 4 and image.shape[1] > 400
        if os.environ.get("AIS_TORCH_DOC_IMAGES"):
            from skimage.io import imsave

            DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
            imsave(DOCS_IMAGES / "napari_loop.png", image, check_contrast=False)
    widget.close()


def test_bad_input_is_a_notification_not_a_crash(qtbot, demo, tmp_path: Path) -> None:
    from ais_torch.napari.io import get_reader
    from ais_torch.napari.widget import AisWidget

    viewer = _viewer_model()
    widget = AisWidget(viewer)
    assert widget.add_feature() is None and "no tomogram" in widget.status.value
    _open(viewer, demo.tomogram)
    assert widget.load_model(tmp_path / "missing.scnm") is None
    assert "model file not found" in widget.status.value
    widget.feature.value = "Carbon"
    widget.add_feature()  # nothing painted yet
    assert widget.train() is None and "no annotated slice" in widget.status.value
    assert widget.copy_prediction() is None and "no model loaded" in widget.status.value
    assert widget.pick() is None and "no segmentation yet" in widget.status.value
    assert get_reader(str(tmp_path / "notes.pdf")) is None
    bad = tmp_path / "bad.mrc"
    bad.write_bytes(b"not an mrc file")
    with pytest.raises(AisInputError, match=r"bad\.mrc"):  # napari shows it as a notification
        get_reader(str(bad))(str(bad))
    assert not list((tmp_path).glob("**/*.scnm"))
    widget.close()


def test_cancel_training_from_the_panel(qtbot, demo, tmp_path: Path) -> None:
    """Cancel stops the worker: no model file, the buttons come back, the viewer keeps running."""
    from ais_torch.napari.widget import AisWidget

    viewer = _viewer_model()
    _open(viewer, demo.tomogram)
    widget = AisWidget(viewer)
    widget.out_folder.value = str(tmp_path / "out")
    widget.feature.value = "Membrane"
    widget.box_size.value = 32
    _paint_demo_slices(widget, demo)
    assert widget.train() is not None and not widget.train_button.enabled
    widget.cancel()
    qtbot.waitUntil(lambda: widget.train_button.enabled, timeout=WAIT_MS)
    assert "cancelled" in widget.status.value and widget.last_model is None
    assert not list((tmp_path / "out").glob("**/*.scnm"))
    widget.close()


@pytest.mark.skipif(
    os.environ.get("QT_QPA_PLATFORM") == "offscreen", reason="a real viewer needs Xvfb (OpenGL)"
)
def test_napari_opens_tomograms_through_the_plugin(make_napari_viewer, demo) -> None:
    """napari's own open() goes through our manifest: memory-mapped, voxel size as scale."""
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(demo.tomogram), plugin="ais_torch")
    assert layer.scale[0] == pytest.approx(10.0) and isinstance(layer.data, np.memmap)
    assert layer.metadata["voxel_size_A"] == pytest.approx(10.0)


@pytest.mark.skipif(
    os.environ.get("QT_QPA_PLATFORM") == "offscreen", reason="a real viewer needs Xvfb (OpenGL)"
)
def test_gui_command_opens_tomogram_and_model_with_the_panel(qtbot, demo, tmp_path: Path) -> None:
    """``ais-torch gui TOMO.mrc MODEL.scnm``: the tomogram as a layer, the model in the panel."""
    from napari_helpers import tiny_model

    from ais_torch.napari.launch import open_viewer

    model = tiny_model(tmp_path, "Membrane")
    viewer, widget = open_viewer([demo.tomogram, model], show=False)
    try:
        assert viewer.layers[0].name == "tomo_00" and "Ais" in viewer.window.dock_widgets
        assert widget.models == {"Membrane": model}
        qtbot.waitUntil(lambda: "Membrane preview" in viewer.layers, timeout=WAIT_MS)
    finally:
        widget.close()
        viewer.close()
