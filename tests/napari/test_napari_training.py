"""Training from the widget runs ``ais-torch train``'s function; cancel leaves no model file."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from ais_torch.formats.mrc import read_volume
from ais_torch.napari.annotations import Annotated, TrainSettings, save_annotations, train_overrides
from ais_torch.napari.training import Progress, TrainingCancelled, run_training
from ais_torch.training.synthetic import write_demo


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], Path]:
    folder = tmp_path_factory.mktemp("demo")
    [files] = write_demo(folder, n_tomograms=1, shape=(24, 80, 80), annotated_slices=2)
    tomo = read_volume(files.tomogram)
    labels = read_volume(files.annotations["membrane"]).data
    item = Annotated(files.tomogram, labels, tomo.voxel_size_A, tomogram_shape=tomo.shape)
    saved = save_annotations([item], "Membrane", folder / "annotations_gui")
    settings = TrainSettings(title="Membrane", arch="eman2", box_size=32, epochs=1, batch_size=4)
    overrides = train_overrides(settings, [files.tomogram], saved)
    return [*overrides, "trainer.limit_train_batches=3", "trainer.accelerator=cpu"], folder


def test_widget_training_writes_the_model_with_progress(demo_run, tmp_path: Path) -> None:
    overrides, _ = demo_run
    seen: list[Progress] = []
    result = run_training(overrides, tmp_path / "run", report=seen.append)
    assert result.model_path == tmp_path / "run" / "Membrane.scnm" and result.model_path.is_file()
    assert [p.step for p in seen] == [1, 2, 3] and seen[-1].total == 3
    assert seen[-1].loss is not None and "epoch 1/1, step 3/3" in seen[-1].text()


def test_cancel_leaves_no_model(demo_run, tmp_path: Path) -> None:
    overrides, _ = demo_run
    cancel = threading.Event()

    def report(p: Progress) -> None:
        if p.step == 1:
            cancel.set()

    with pytest.raises(TrainingCancelled, match="no model was written"):
        run_training(overrides, tmp_path / "run", report=report, cancel=cancel)
    assert not list((tmp_path / "run").glob("*.scnm"))
