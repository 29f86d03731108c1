"""The plugin's logic without Qt: reader/writer, annotation bookkeeping, preview, training."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from napari_helpers import tiny_model

from ais_torch import segment_volume
from ais_torch.errors import AisInputError
from ais_torch.formats.coordinates import write_coordinates_txt, write_star
from ais_torch.formats.mrc import Volume, read_volume, write_volume
from ais_torch.napari import io
from ais_torch.napari.annotations import (
    Annotated,
    TrainSettings,
    annotated_slices,
    save_annotations,
    summarise,
    train_command,
    train_overrides,
)
from ais_torch.napari.preview import NewestWins, SlicePredictor, threshold_mask
from ais_torch.training.boxes import extract_boxes


@pytest.fixture
def tomo(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    data = rng.normal(size=(6, 40, 52)).astype(np.float32)
    return write_volume(tmp_path / "t0.mrc", data, voxel_size_A=10.0, origin_A=(5.0, -3.0, 2.0))


# reader and writer ---------------------------------------------------------------------------


def test_reader_maps_tomogram_with_voxel_size_as_scale(tomo: Path) -> None:
    reader = io.get_reader(str(tomo))
    assert reader is not None and io.get_reader("notes.pdf") is None
    [(data, kwargs, kind)] = reader(str(tomo))
    assert kind == "image" and isinstance(data, np.memmap) and data.shape == (6, 40, 52)
    assert kwargs["scale"] == (10.0, 10.0, 10.0) and kwargs["name"] == "t0"
    assert kwargs["metadata"]["origin_A"] == (5.0, -3.0, 2.0)
    lo, hi = kwargs["contrast_limits"]
    assert lo < hi


def test_reader_gives_picks_as_points_in_the_tomogram_scale(tomo: Path) -> None:
    xyz = np.array([[1.0, 2.0, 3.0], [10.0, 20.0, 4.0]])
    star = write_star(tomo.parent / "t0__Ribosome.star", xyz, tomo_name="t0")
    txt = write_coordinates_txt(tomo.parent / "other.txt", xyz)
    [(points, kwargs, kind)] = io.read_paths(str(star))
    assert kind == "points" and kwargs["scale"] == (10.0, 10.0, 10.0)
    np.testing.assert_allclose(points, xyz[:, ::-1])  # napari's (z, y, x)
    [(points_txt, kwargs_txt, _)] = io.read_paths(str(txt))
    assert kwargs_txt["scale"] == (1.0, 1.0, 1.0)  # no tomogram named other.mrc: voxels
    np.testing.assert_allclose(points_txt, xyz[:, ::-1])


def test_reader_hands_models_to_the_widget(tmp_path: Path) -> None:
    model = tiny_model(tmp_path)
    got: list[Path] = []
    assert io.read_paths(str(model)) == [(None,)]  # no widget yet: kept
    waiting = io.listen_for_models(got.append)
    try:
        assert waiting == [model]
        io.read_paths(str(model))
        assert got == [model]
    finally:
        io.stop_listening(got.append)


def test_writer_keeps_voxel_size_and_origin_and_is_int8(tmp_path: Path) -> None:
    labels = np.zeros((4, 8, 8), np.int32)
    labels[1, 2:4, 2:4] = 1
    labels[1, 5, 5] = 2
    meta = {"scale": (7.0, 7.0, 7.0), "metadata": {"origin_A": (1.0, 2.0, 3.0)}}
    [out] = io.write_labels(str(tmp_path / "lab"), labels, meta)
    assert out.endswith("lab.mrc")
    back = read_volume(out)
    assert back.voxel_size_A == pytest.approx(7.0) and back.origin_A == (1.0, 2.0, 3.0)
    assert back.data.dtype == np.int8
    np.testing.assert_array_equal(back.data, labels)
    assert not list(tmp_path.glob(".*"))  # no temp file left


# annotations -------------------------------------------------------------------------------


def test_counts_match_the_boxes_training_cuts(tomo: Path) -> None:
    volume = read_volume(tomo)
    labels = np.zeros(volume.shape, np.uint8)
    labels[1, 5:12, 5:30] = 1  # feature
    labels[1, 30:, :] = 2  # ignore
    labels[4, :, :] = 0
    labels[4, 0, 0] = 2  # annotated, otherwise all negative
    item = Annotated(tomo, labels, 10.0, tomogram_shape=volume.shape)
    for box, apix in ((16, None), (8, None), (16, 14.0)):
        summary = summarise([item], box_size=box, apix=apix)
        boxes = extract_boxes(volume, labels, feature="f", box_size=box, apix=apix)
        negatives = sum(s["negative"] for s in boxes.sources)
        assert summary.positive == len(boxes.sources) - negatives, (box, apix)
        assert summary.negative == negatives, (box, apix)
    assert summary.slices == {"t0.mrc": [1, 4]} and annotated_slices(labels) == [1, 4]
    assert "2 slices (t0.mrc: 1, 4)" in summary.text()


def test_shape_mismatch_and_empty_annotations_are_one_line_errors(tmp_path: Path) -> None:
    bad = Annotated(
        tmp_path / "t.mrc", np.zeros((2, 4, 4), np.uint8), 10.0, tomogram_shape=(2, 4, 5)
    )
    with pytest.raises(AisInputError, match=r"t\.mrc: labels have shape"):
        summarise([bad], box_size=4)
    empty = Annotated(
        tmp_path / "t.mrc", np.zeros((2, 4, 4), np.uint8), 10.0, tomogram_shape=(2, 4, 4)
    )
    with pytest.raises(AisInputError, match="no annotated slice"):
        save_annotations([empty], "Membrane", tmp_path / "ann")
    assert not (tmp_path / "ann").exists() or not list((tmp_path / "ann").iterdir())


def test_saved_annotations_and_printed_command_compose_the_same_run(
    tomo: Path, tmp_path: Path
) -> None:
    from ais_torch.napari.training import compose

    labels = np.zeros((6, 40, 52), np.uint8)
    labels[2, 10:20, 10:20] = 1
    item = Annotated(tomo, labels, 10.0, (5.0, -3.0, 2.0), (6, 40, 52))
    [saved] = save_annotations([item], "Outer membrane", tmp_path / "ann")
    assert saved.name == "t0__Outer membrane.mrc" or saved.name.startswith("t0__Outer")
    assert read_volume(saved).origin_A == (5.0, -3.0, 2.0)
    settings = TrainSettings(title="Outer membrane", arch="eman2", box_size=16, epochs=2)
    overrides = train_overrides(settings, [tomo], [saved])
    cfg = compose(overrides)
    assert cfg.data.source == "annotations" and cfg.title == "Outer membrane"
    assert list(cfg.data.labels) == [str(saved.resolve())]
    assert cfg.trainer.max_epochs == 2 and cfg.data.box_size == 16
    line = train_command(overrides)
    assert line.startswith("ais-torch train data=annotations ")
    assert "'title='\"'\"'Outer membrane'\"'\"''" in line or "title='Outer membrane'" in line


# preview -----------------------------------------------------------------------------------


def test_slice_preview_equals_segment_volume(tomo: Path, tmp_path: Path) -> None:
    volume = read_volume(tomo)
    for depth in (1, 3):
        model = tiny_model(tmp_path, f"D{depth}", depth=depth)
        full = segment_volume(volume, model, dtype="float32")[f"D{depth}"]
        predictor = SlicePredictor(volume, model)
        for z in (0, 3, 5):
            np.testing.assert_allclose(predictor.predict(z), full[z], atol=1e-5)
        assert predictor.cached(3) is not None and predictor.cached(3, tta=2) is None
    with pytest.raises(AisInputError, match="outside the tomogram"):
        predictor.predict(6)


def test_preview_rescales_like_a_batch_run(tomo: Path, tmp_path: Path) -> None:
    volume = read_volume(tomo)
    model = tiny_model(tmp_path, "Coarse", apix=20.0)
    full = segment_volume(volume, model, dtype="float32", tta=2)["Coarse"]
    predictor = SlicePredictor(volume, model)
    np.testing.assert_allclose(predictor.predict(2, tta=2), full[2], atol=1e-5)
    assert predictor.predict(2, tta=2).shape == (40, 52)


def test_newest_request_wins() -> None:
    """Requests made while a job runs collapse to the newest; stale results are not shown."""
    gate = threading.Event()
    delivered: list[tuple[int, int]] = []

    def compute(z: int) -> int:
        gate.wait(5)
        return z * 10

    done = threading.Event()

    def deliver(z: int, value: int) -> None:
        delivered.append((z, value))
        done.set()

    queue: NewestWins[int, int] = NewestWins(compute, deliver)
    queue.request(1)
    for z in (2, 3, 4):
        queue.request(z)
    assert queue.busy and queue.running == 1
    gate.set()
    assert done.wait(5)
    deadline = time.time() + 5
    while queue.busy and time.time() < deadline:
        time.sleep(0.01)
    assert queue.computed == [1, 4] and delivered == [(4, 40)]


def test_newest_wins_reports_errors_of_the_wanted_key_only() -> None:
    errors: list[str] = []

    def run_now(job, on_done, on_error) -> None:  # synchronous, as a test double of a worker
        try:
            value = job()
        except Exception as err:
            on_error(err)
            return
        on_done(value)

    def compute(z: int) -> int:
        raise AisInputError(f"bad slice {z}")

    queue: NewestWins[int, int] = NewestWins(
        compute, lambda z, v: None, on_error=lambda z, e: errors.append(str(e)), run_async=run_now
    )
    queue.request(7)
    assert errors == ["bad slice 7"] and not queue.busy


def test_threshold_mask() -> None:
    prob = np.array([[0.1, 0.5], [0.7, 0.49]], np.float32)
    np.testing.assert_array_equal(threshold_mask(prob, 0.5), [[0, 1], [1, 0]])


def test_predictor_with_a_plain_volume(tmp_path: Path) -> None:
    data = np.random.default_rng(1).normal(size=(3, 32, 32)).astype(np.float32)
    predictor = SlicePredictor(Volume(data, 10.0), tiny_model(tmp_path))
    assert predictor.predict(1).dtype == np.float32 and predictor.title == "Tiny"


def test_gui_verb_help_and_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from ais_torch import commands

    with pytest.raises(SystemExit) as exit_help:
        commands.main(["gui", "--help"])
    assert exit_help.value.code == 0 and "usage: ais-torch gui" in capsys.readouterr().out
    assert commands.main(["gui", str(tmp_path / "missing.mrc")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ("missing.mrc: file not found" in err or "napari" in err)
