"""Issue 14 follow-ups: interactions in the preview, segmenting with progress and cancel, one
threshold per model, plugin architectures from the panel."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from napari_helpers import tiny_model

from ais_torch import segment_volume
from ais_torch.errors import AisError, ConfigError
from ais_torch.formats.mrc import read_volume, write_volume
from ais_torch.napari.annotations import TrainSettings, arch_overrides, train_overrides
from ais_torch.napari.preview import InteractionPreview, SlicePredictor, interaction_sets

SET = "membrane_avoids_carbon"  # competition (Carbon emits, Membrane absorbs) + a 3d avoid rule


@pytest.fixture
def tomo(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    data = rng.normal(size=(7, 36, 44)).astype(np.float32)
    return write_volume(tmp_path / "t1.mrc", data, voxel_size_A=10.0)


@pytest.fixture
def pair(tmp_path: Path) -> dict[str, Path]:
    membrane = tiny_model(tmp_path, "Membrane")
    carbon = tiny_model(tmp_path, "Carbon", seed=3)  # different weights: the two disagree
    return {"Membrane": membrane, "Carbon": carbon}


# 1. interactions in the live preview ------------------------------------------------------


def test_preview_with_interactions_equals_the_batch(tomo: Path, pair: dict[str, Path]) -> None:
    """With the whole tomogram in the halo the preview is the batch's post-processing exactly;
    the default halo (2 slices) keeps competition exact and differs from it no more than the
    3d rule's sphere beyond those slices allows."""
    assert SET in interaction_sets() and "none" in interaction_sets()
    volume = read_volume(tomo)
    batch = segment_volume(volume, list(pair.values()), dtype="float32", interactions=SET)
    plain = segment_volume(volume, list(pair.values()), dtype="float32", interactions=None)
    predictors = {t: SlicePredictor(volume, p) for t, p in pair.items()}
    whole = InteractionPreview(predictors, SET, halo=volume.shape[0])
    for z in (0, 3):
        probs = whole.predict(z)
        for title in pair:
            np.testing.assert_allclose(probs[title], batch[title][z], atol=1e-5)
    assert not np.allclose(batch["Membrane"], plain["Membrane"])  # the set changes something
    # the raw per-model previews are untouched (the hook works on copies)
    np.testing.assert_allclose(predictors["Membrane"].predict(3), plain["Membrane"][3], atol=1e-5)
    near = InteractionPreview(predictors, SET)  # halo 2: slices 1..5 for z = 3
    assert near.z_range(3) == (1, 6) and near.z_range(0) == (0, 3)
    np.testing.assert_allclose(near.predict(3)["Carbon"], batch["Carbon"][3], atol=1e-5)


def test_interactions_naming_a_missing_model_is_one_line(tomo: Path, pair: dict[str, Path]) -> None:
    volume = read_volume(tomo)
    only = {"Membrane": SlicePredictor(volume, pair["Membrane"])}
    with pytest.raises(ConfigError, match="Carbon"):
        InteractionPreview(only, SET).predict(2)
    with pytest.raises(ConfigError, match="no such rule set"):
        InteractionPreview(only, "no_such_set")


# 2. segment with progress and cancel -------------------------------------------------------


@pytest.mark.gui  # the panel's module needs magicgui/Qt (the napari extra)
def test_segment_file_reports_progress_and_matches_the_library(
    tomo: Path, pair: dict[str, Path], tmp_path: Path
) -> None:
    from ais_torch.napari.widget import segment_file

    seen: list[tuple[int, int]] = []
    out = tmp_path / "seg"
    paths = segment_file(
        list(pair.values()), tomo, out, interactions=SET, report=lambda d, t: seen.append((d, t))
    )
    assert sorted(p.name for p in paths) == ["t1__Carbon.mrc", "t1__Membrane.mrc"]
    assert seen and seen[-1] == (14, 14) and all(t == 14 for _, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    expected = segment_volume(read_volume(tomo), list(pair.values()), interactions=SET)
    written = read_volume(out / "t1__Membrane.mrc").data
    np.testing.assert_array_equal(np.asarray(written), expected["Membrane"])
    assert read_volume(out / "t1__Membrane.mrc").voxel_size_A == pytest.approx(10.0)


@pytest.mark.gui  # the panel's module needs magicgui/Qt (the napari extra)
def test_cancelled_segmentation_leaves_no_file(
    tomo: Path, pair: dict[str, Path], tmp_path: Path
) -> None:
    from ais_torch.napari.widget import SegmentationCancelled, segment_file

    cancel = threading.Event()
    out = tmp_path / "seg"

    def report(done: int, total: int) -> None:
        cancel.set()  # the user presses Cancel after the first slab

    with pytest.raises(SegmentationCancelled, match="nothing written"):
        segment_file([pair["Membrane"]], tomo, out, report=report, cancel=cancel)
    assert not out.exists() or not any(out.iterdir())  # no file, no temp file
    assert issubclass(SegmentationCancelled, AisError)


# 4. plugin architectures from the panel ----------------------------------------------------


@pytest.mark.gui  # the panel's module needs magicgui/Qt (the napari extra)
def test_architectures_without_a_preset_train_as_plugins() -> None:
    from ais_torch.napari.training import compose
    from ais_torch.napari.widget import arch_choices

    choices = arch_choices()
    assert "unet_s" in choices and "plugin" not in choices and "base" not in choices
    assert arch_overrides("unet_s") == ["arch=unet_s"]
    assert "unet" in choices  # registered, no conf/arch/unet.yaml
    assert arch_overrides("unet") == ["arch=plugin", "arch.name=unet"]
    overrides = train_overrides(
        TrainSettings(title="M", arch="unet"), [Path("/tmp/t.mrc")], [Path("/tmp/l.mrc")]
    )
    assert "arch=plugin" in overrides and "arch.name=unet" in overrides
    cfg = compose(overrides)
    assert cfg.arch.name == "unet"
    assert compose(train_overrides(TrainSettings(title="M"), [Path("/t.mrc")], [Path("/l.mrc")]))


# 1 + 3 in the widget: one threshold per preview, interactions on the canvas-less viewer -----


@pytest.mark.gui
def test_widget_thresholds_per_model_and_interactions(
    qtbot, tomo: Path, pair: dict[str, Path]
) -> None:
    from napari.components import ViewerModel

    from ais_torch.napari.io import read_paths
    from ais_torch.napari.widget import AisWidget

    viewer = ViewerModel()
    for data, kwargs, kind in read_paths(str(tomo)):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    widget = AisWidget(viewer)
    assert widget.interactions.value == "off" and SET in widget.interactions.choices
    for path in pair.values():
        widget.load_model(path)
    qtbot.waitUntil(lambda: all(f"{t} preview" in viewer.layers for t in pair), timeout=60_000)
    widget.model.value = "Membrane"
    widget.threshold.value = 0.3
    widget.model.value = "Carbon"
    assert widget.threshold.value == pytest.approx(0.5)  # Carbon keeps its own
    widget.threshold.value = 0.7
    assert viewer.layers["Membrane preview"].contrast_limits[0] == pytest.approx(0.3)
    assert viewer.layers["Carbon preview"].contrast_limits[0] == pytest.approx(0.7)
    widget.model.value = "Membrane"
    assert widget.threshold.value == pytest.approx(0.3)

    z = widget.current_z()
    volume = read_volume(tomo)
    widget.interactions.value = SET
    expected = InteractionPreview(
        {t: SlicePredictor(volume, p) for t, p in pair.items()}, SET
    ).predict(z)
    qtbot.waitUntil(
        lambda: np.allclose(viewer.layers["Membrane preview"].data, expected["Membrane"]),
        timeout=60_000,
    )
    np.testing.assert_allclose(widget.preview_now("Carbon"), expected["Carbon"], atol=1e-6)

    # 2. Segment from the panel: Cancel leaves no file; then every model through the set
    out = tomo.parent / "out"
    widget.out_folder.value = str(out)
    assert widget.segment() is not None and widget.cancel_button.enabled
    widget.cancel()
    qtbot.waitUntil(lambda: widget.segment_button.enabled, timeout=60_000)
    assert "cancelled" in widget.status.value and widget.last_segmentation is None
    assert not out.exists() or not any(out.iterdir())
    widget.segment()
    qtbot.waitUntil(lambda: widget.last_segmentation is not None, timeout=60_000)
    assert widget.last_segmentation == out / "t1__Membrane.mrc"
    assert sorted(p.name for p in out.iterdir()) == ["t1__Carbon.mrc", "t1__Membrane.mrc"]
    assert widget.progress.value == widget.progress.max == 2 * volume.shape[0]
    assert "t1__Carbon" in viewer.layers and not widget.cancel_button.enabled
    widget.close()
