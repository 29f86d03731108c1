"""``ais-torch train data=copick``: labels from a project's segmentations or picks, tomograms read
lazily from the same project, a model at the end."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("copick")

from copick_project import make_project, tomogram
from hydra_train import compose_train
from omegaconf import OmegaConf

from ais_torch import load_model
from ais_torch.errors import AisError, AisInputError
from ais_torch.formats import copick as cp
from ais_torch.formats.mrc import read_volume
from ais_torch.training.copick_labels import resolve_copick, sphere_classes
from ais_torch.training.datamodule import AisDataModule
from ais_torch.training.sources import LazyTomogram
from ais_torch.training.synthetic import annotation_volume, choose_annotated_slices, make_tomogram

SHAPE = (20, 40, 48)


def _data(tmp_path: Path, project: Path, **keys: object) -> object:
    """The composed ``data`` node of ``train data=copick`` with ``keys`` set."""
    overrides = ["data=copick", f"data.project={project}", f"paths.output_dir={tmp_path}"]
    overrides += [f"data.{k}={v}" for k, v in keys.items()]
    return compose_train(overrides).data


def _sparse_labels(seed: int = 0) -> np.ndarray:
    """0/1/2 labels on slices 3, 9 and 15 (a user's drawing), all 0 elsewhere."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(SHAPE, np.uint8)
    for z in (3, 9, 15):
        labels[z] = rng.integers(0, 3, size=SHAPE[1:])
    return labels


@pytest.fixture
def project(tmp_path: Path) -> Path:
    runs = {name: {10.0: {"wbp": tomogram(SHAPE, seed=i)}} for i, name in enumerate(("A", "B"))}
    return make_project(tmp_path / "proj", runs)


def test_segmentation_labels_are_the_written_labels_on_annotated_slices(
    project: Path, tmp_path: Path
) -> None:
    written = _sparse_labels()
    cp.write_segmentation(project, "A", "membrane", written, voxel_size_A=10.0)
    data = resolve_copick(
        _data(tmp_path, project, **{"copick.runs": "[A]", "slices": "null"}), tmp_path
    )
    assert [str(t) for t in data.tomograms] == ["A"] and not data.eval_pairs
    (tomo,) = data.tomograms
    assert isinstance(tomo, LazyTomogram)
    volume = tomo.open()
    assert type(volume.data).__module__.startswith("zarr")  # read from the project, lazily
    np.testing.assert_array_equal(np.asarray(volume.data[:]), tomogram(SHAPE, seed=0))
    labels = read_volume(data.labels[0], check_finite=False)
    assert Path(data.labels[0]) == tmp_path / "copick_labels" / "A__membrane.mrc"
    assert labels.voxel_size_A == 10.0
    np.testing.assert_array_equal(labels.data, written)

    # slices=2 keeps two of the three annotated slices (first and last), the rest unannotated
    few = resolve_copick(_data(tmp_path, project, **{"copick.runs": "[A]", "slices": 2}), tmp_path)
    kept = read_volume(few.labels[0], check_finite=False).data
    expected = np.zeros_like(written)
    expected[[3, 15]] = written[[3, 15]]
    np.testing.assert_array_equal(kept, expected)


def test_a_grey_segmentation_needs_a_threshold(project: Path, tmp_path: Path) -> None:
    grey = np.zeros(SHAPE, np.uint8)
    grey[5, 10:20, 10:30] = 200
    grey[5, 30:, :] = 60
    cp.write_segmentation(project, "A", "membrane", grey, voxel_size_A=10.0)
    with pytest.raises(AisInputError, match=r"value 200, not a label .* data.label_threshold="):
        resolve_copick(_data(tmp_path, project, **{"copick.runs": "[A]"}), tmp_path)
    data = resolve_copick(
        _data(tmp_path, project, **{"copick.runs": "[A]", "label_threshold": 128}), tmp_path
    )
    labels = read_volume(data.labels[0], check_finite=False).data
    np.testing.assert_array_equal(labels, (grey >= 128).astype(np.uint8))


def test_pick_spheres_of_the_object_radius(project: Path, tmp_path: Path) -> None:
    centres_xyz = np.array([[20.0, 15.0, 10.0], [40.0, 30.0, 2.0]])  # voxels; the 2nd is cut off
    cp.write_picks(project, "A", "antibody", centres_xyz, voxel_size_A=10.0, user_id="alice")
    keys = {"copick.runs": "[A]", "feature": "antibody", "labels_from": "picks", "slices": "null"}
    data = resolve_copick(_data(tmp_path, project, **keys), tmp_path)
    labels = read_volume(data.labels[0], check_finite=False).data

    # the config's radius: 60 Å = 6 voxels at 10 Å; a voxel is inside when its centre is
    zz, yy, xx = np.indices(SHAPE)
    inside = np.zeros(SHAPE, bool)
    for x, y, z in centres_xyz:
        inside |= (zz - z) ** 2 + (yy - y) ** 2 + (xx - x) ** 2 <= 6.0**2
    np.testing.assert_array_equal(labels, inside.astype(np.uint8))  # 0 on the crossed slices
    assert labels[10, 15, 20] == 1 and labels[10, 15, 26] == 1 and labels[10, 15, 27] == 0
    assert labels[16, 15, 20] == 1 and labels[17, 15, 20] == 0
    annotated = np.flatnonzero(labels.reshape(SHAPE[0], -1).max(axis=1))
    assert list(annotated) == list(range(0, 17))  # every slice a sphere crosses

    # data.radius overrides the config's; slices bounds the slices kept
    keys |= {"radius": 20.0, "slices": 3}
    small = read_volume(
        resolve_copick(_data(tmp_path, project, **keys), tmp_path).labels[0], check_finite=False
    ).data
    # spheres of 2 voxels cross slices 0-4 and 8-12; three of these ten, evenly spaced
    assert list(np.flatnonzero(small.reshape(SHAPE[0], -1).max(axis=1))) == [0, 4, 12]
    assert small[12].sum() == 1 and small[12, 15, 20] == 1  # the top of the 1st sphere


def test_sphere_classes_edge_and_subvoxel_radius() -> None:
    out = sphere_classes((5, 5, 5), np.array([[2.0, 2.0, 2.0], [9.0, 9.0, 9.0]]), 0.4)
    assert out.sum() == 1 and out[2, 2, 2] == 1  # a tiny sphere still marks its voxel
    out = sphere_classes((5, 5, 5), np.array([[0.0, 0.0, 0.0]]), 1.0)
    assert out.sum() == 4  # the centre and its three in-volume neighbours


def test_runs_without_labels_are_skipped_and_eval_runs_held_out(
    project: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cp.write_segmentation(project, "B", "membrane", _sparse_labels(1), voxel_size_A=10.0)
    with caplog.at_level(logging.WARNING, logger="ais_torch.train"):
        data = resolve_copick(_data(tmp_path, project), tmp_path)
    assert [str(t) for t in data.tomograms] == ["B"]
    assert "run A has no segmentation 'membrane' at 10 Å" in caplog.text
    assert "skipping this run" in caplog.text

    cp.write_segmentation(project, "A", "membrane", _sparse_labels(2), voxel_size_A=10.0)
    held = resolve_copick(_data(tmp_path, project, eval_runs="[A]"), tmp_path)
    assert [str(t) for t in held.tomograms] == ["B"]
    ((tomo, truth),) = held.eval_pairs
    assert str(tomo) == "A" and truth.name == "A__membrane_truth.mrc"
    np.testing.assert_array_equal(
        read_volume(truth, check_finite=False).data, (_sparse_labels(2) == 1).astype(np.uint8)
    )


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"feature": "ribosome"}, r"no object 'ribosome' \(objects: antibody, membrane\); set "
         r"data.copick.object="),
        ({}, r"no run has segmentation of 'membrane' to train on \(tried A, B\)"),
        ({"copick.runs": "[C]"}, r"no run 'C' \(runs: A, B\); check data.copick.runs"),
        ({"copick.tomo_type": "ctf"}, r"no tomogram 'ctf' \(types: wbp\); check data.copick.tomo"),
        ({"eval_runs": "[A,B]"}, r"every selected run is in data.eval_runs"),
        ({"labels_from": "masks"}, r"data.labels_from='masks'; use segmentation or picks"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line(
    project: Path, tmp_path: Path, keys: dict[str, object], message: str
) -> None:
    with pytest.raises(AisError) as err:
        resolve_copick(_data(tmp_path, project, **keys), tmp_path)
    assert "\n" not in str(err.value)
    assert err.match(message)


def test_several_label_sets_are_listed_and_user_id_chooses(project: Path, tmp_path: Path) -> None:
    for user in ("alice", "bob"):
        cp.write_picks(project, "A", "antibody", [[20, 15, 10]], voxel_size_A=10.0, user_id=user)
    keys = {"copick.runs": "[A]", "feature": "antibody", "labels_from": "picks"}
    with pytest.raises(AisInputError, match=r"2 picks sets .*\(alice/0, bob/0\); choose one with "
                       r"data.copick.user_id="):  # fmt: skip
        resolve_copick(_data(tmp_path, project, **keys), tmp_path)
    data = resolve_copick(_data(tmp_path, project, **keys, **{"copick.user_id": "bob"}), tmp_path)
    assert len(data.labels) == 1


def test_picks_need_a_radius(tmp_path: Path) -> None:
    objects = [{"name": "ribosome", "is_particle": True, "label": 1}]
    project = make_project(tmp_path / "proj", objects=objects)
    cp.write_picks(project, "TS_001", "ribosome", [[20, 15, 3]], voxel_size_A=10.0)
    keys = {"feature": "Ribosome", "labels_from": "picks"}
    with pytest.raises(AisInputError, match=r"object 'ribosome' has no radius .* data.radius="):
        resolve_copick(_data(tmp_path, project, **keys), tmp_path)
    data = resolve_copick(_data(tmp_path, project, **keys, radius=30), tmp_path)
    assert read_volume(data.labels[0], check_finite=False).data.sum() > 0


def test_without_copick_the_fix_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = make_project(tmp_path / "proj")
    monkeypatch.setitem(sys.modules, "copick", None)  # as if not installed
    cp._open.cache_clear()
    with pytest.raises(AisInputError, match=r'pip install "ais_torch\[copick\]"'):
        resolve_copick(_data(tmp_path, project), tmp_path)


def test_the_data_module_cuts_boxes_from_the_lazy_tomogram(project: Path, tmp_path: Path) -> None:
    written = _sparse_labels()
    cp.write_segmentation(project, "A", "membrane", written, voxel_size_A=10.0)
    data = resolve_copick(_data(tmp_path, project, **{"copick.runs": "[A]"}), tmp_path)
    module = AisDataModule(
        tomograms=data.tomograms, labels=data.labels, box_size=16, stride=16, n_copies=1
    )
    module.setup()
    assert module.apix == 10.0 and len(module.boxset) == 3 * 3 * 3  # 3 slices × 3 × 3 boxes
    assert {s["tomogram"] for s in module.boxset.sources} == {"A"}


@pytest.mark.slow
def test_train_data_copick_writes_a_model_and_a_heldout_dice(tmp_path: Path) -> None:
    """The whole ``train data=copick`` on two demo tomograms: one trains (2 drawn slices), a
    4-slice crop of the other is held out (its dense labels score the model)."""
    demos = [make_tomogram(seed=i, shape=(24, 80, 80)) for i in range(2)]
    held = slice(8, 12)
    runs = {
        "TS_0": {10.0: {"wbp": demos[0].volume}},
        "TS_1": {10.0: {"wbp": demos[1].volume[held]}},
    }
    project = make_project(tmp_path / "proj", runs)
    label = demos[0].labels["membrane"]
    sparse = annotation_volume(label, choose_annotated_slices(label, 2))
    cp.write_segmentation(project, "TS_0", "membrane", sparse, voxel_size_A=10.0)
    truth = demos[1].labels["membrane"][held]
    cp.write_segmentation(project, "TS_1", "membrane", truth, voxel_size_A=10.0)
    overrides = [
        "data=copick",
        f"data.project={project}",
        "data.eval_runs=[TS_1]",
        "title=Membrane",
        "arch=vggnet_s",
        f"paths.output_dir={tmp_path}",
        "data.box_size=32",
        "data.stride=32",
        "data.n_copies=1",
        "data.batch_size=4",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "trainer.enable_progress_bar=false",
    ]
    from ais_torch.commands.train import train

    result = train(compose_train(overrides), tmp_path / "run")
    assert result.model_path == tmp_path / "run" / "Membrane.scnm"
    meta = load_model(result.model_path).metadata
    assert (meta.title, meta.apix, meta.box_size) == ("Membrane", 10.0, 32)
    assert result.dice is not None and 0.0 <= result.dice <= 1.0
    # the preview panel (held-out run, read from the project) reached TensorBoard
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(result.log_dir))
    events.Reload()
    assert "preview/input_prediction_label" in events.Tags()["images"]
    kept = OmegaConf.to_container(compose_train(overrides).data.copick)
    assert kept == {
        "object": None,
        "runs": None,
        "voxel_spacing": None,
        "tomo_type": None,
        "user_id": None,
        "session_id": None,
    }
