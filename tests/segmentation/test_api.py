"""``segment_volume`` is the one data path: the batch's files and the training preview equal it."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import mrcfile
import numpy as np
import pytest
import torch
from segment_helpers import metadata, tiny_unet

import ais_torch
from ais_torch.errors import ConfigError
from ais_torch.formats.mrc import read_volume, write_volume
from ais_torch.formats.scnm import save_scnm
from ais_torch.segmentation.api import Segmenter, uses_global_mad
from ais_torch.segmentation.batch import segment
from ais_torch.training.callbacks import PredictionPreview, preview_metadata
from ais_torch.training.synthetic import make_tomogram


@pytest.fixture
def demo_tomogram(tmp_path: Path) -> Path:
    """A small synthetic demo tomogram (vesicles, carbon, particles) at 10 Å."""
    demo = make_tomogram(seed=3, shape=(24, 96, 112))
    return write_volume(tmp_path / "demo.mrc", demo.volume, voxel_size_A=10.0)


def _two_models(tmp_path: Path) -> list[Path]:
    paths = []
    for seed, (title, normalization, apix) in enumerate(
        [("Membrane", "per_slice", 10.0), ("Carbon", "global_mad", 20.0)]
    ):
        model = tiny_unet(seed=seed)
        path = tmp_path / f"{title}.scnm"
        save_scnm(path, model, metadata(title, model, normalization=normalization, apix=apix))
        paths.append(path)
    return paths


def test_segment_volume_equals_the_files_segment_writes(
    tmp_path: Path, demo_tomogram: Path
) -> None:
    models = _two_models(tmp_path)  # one per-slice at the tomogram's size, one global_mad rescaled
    report = segment([str(p) for p in models], demo_tomogram, tmp_path / "out", progress=False)
    assert report.ok and len(report.written) == 2
    arrays = ais_torch.segment_volume(read_volume(demo_tomogram), [str(p) for p in models])
    assert set(arrays) == {"Membrane", "Carbon"}
    for title, array in arrays.items():
        written = mrcfile.read(tmp_path / "out" / f"demo__{title}.mrc")
        assert array.dtype == np.uint8 and array.shape == written.shape
        assert np.array_equal(array, written), title
        assert np.ptp(array) > 0


def test_segment_volume_with_interactions_equals_segment(
    tmp_path: Path, demo_tomogram: Path
) -> None:
    models = [str(p) for p in _two_models(tmp_path)]
    rule = {"parent": "Carbon", "partner": "Membrane", "type": "colocalize", "radius_nm": 3}
    rules = {"rules": [{**rule, "threshold": 0.99}]}  # no partner that sure: Carbon is emptied
    report = segment(models, demo_tomogram, tmp_path / "out", interactions=rules, progress=False)
    assert report.ok
    arrays = ais_torch.segment_volume(read_volume(demo_tomogram), models, interactions=rules)
    plain = ais_torch.segment_volume(read_volume(demo_tomogram), models)
    for title, array in arrays.items():
        assert np.array_equal(array, mrcfile.read(tmp_path / "out" / f"demo__{title}.mrc"))
    assert not np.array_equal(arrays["Carbon"], plain["Carbon"])  # the rule did something


def test_a_segmenter_is_reused_and_keeps_its_settings(tmp_path: Path, demo_tomogram: Path) -> None:
    segmenter = Segmenter.build([str(p) for p in _two_models(tmp_path)], tta=2)
    volume = read_volume(demo_tomogram)
    first = ais_torch.segment_volume(volume, segmenter)
    again = ais_torch.segment_volume(volume, segmenter, z_range=(4, 6))
    assert np.array_equal(first["Membrane"][4:6], again["Membrane"][4:6])
    assert not again["Membrane"][:4].any() and not again["Membrane"][6:].any()
    with pytest.raises(ConfigError, match="carries its own settings"):
        ais_torch.segment_volume(volume, segmenter, tta=4)


def test_float32_output_and_a_training_network_stays_in_training(demo_tomogram: Path) -> None:
    model = tiny_unet().train()
    model.metadata = metadata("Tiny", model, normalization="per_slice")
    volume = read_volume(demo_tomogram)
    prob = ais_torch.segment_volume(volume, model, dtype="float32")["Tiny"]
    grey = ais_torch.segment_volume(volume, model)["Tiny"]
    assert prob.dtype == np.float32 and 0.0 <= prob.min() and prob.max() <= 1.0
    assert np.array_equal((prob * 255).astype(np.uint8), grey)
    assert model.training


def test_the_training_preview_of_a_global_mad_model_equals_segment_volume(
    tmp_path: Path, demo_tomogram: Path
) -> None:
    model = tiny_unet().train()
    meta = metadata("Membrane", model, normalization="global_mad", apix=20.0)  # rescaled too
    assert uses_global_mad(meta)
    model.metadata = meta
    trainer = SimpleNamespace(datamodule=SimpleNamespace(apix=20.0))
    assert preview_metadata(model, trainer) is meta  # a network's own metadata wins
    z = 5
    preview = PredictionPreview(demo_tomogram, z, None, (0.2, 0.8, 0.6))
    shown = preview.prediction(model, meta)
    volume = read_volume(demo_tomogram)
    one = ais_torch.segment_volume(volume, model, dtype="float32", z_range=(z, z + 1))
    np.testing.assert_array_equal(shown, one["Membrane"][z])
    whole = ais_torch.segment_volume(volume, model, dtype="float32")  # other batch sizes:
    np.testing.assert_allclose(shown, whole["Membrane"][z], atol=1e-6)  # float rounding only
    # the global statistic really matters: per-slice normalisation gives another picture
    meta_slice = metadata("Membrane", model, normalization="per_slice", apix=20.0)
    assert not np.allclose(preview.prediction(model, meta_slice), shown)
    assert model.training


def test_preview_metadata_of_a_new_network_follows_the_data() -> None:
    model = tiny_unet()
    trainer = SimpleNamespace(datamodule=SimpleNamespace(apix=20.0))
    meta = preview_metadata(model, trainer)
    assert meta.apix == 20.0 and meta.normalization == "per_slice" and meta.model_depth == 1


def test_named_interaction_sets_and_clear_errors(demo_tomogram: Path) -> None:
    model = tiny_unet()
    model.metadata = metadata("Membrane", model)
    volume = read_volume(demo_tomogram)
    with pytest.raises(ConfigError, match="antibody_platforms"):
        ais_torch.segment_volume(volume, model, interactions="no_such_set")
    with pytest.raises(ConfigError, match="no model"):
        ais_torch.segment_volume(volume, [])
    with pytest.raises(ConfigError, match="not a mix"):
        ais_torch.segment_volume(volume, [model, "Other.scnm"])
    assert isinstance(model, torch.nn.Module)
