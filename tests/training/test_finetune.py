"""Fine-tuning (``ais-torch train … init=Model.scnm``): start from a model file, keep its geometry.

The original's own ``.scnm`` (Keras weights) and ours both work: the run starts from the file's
outputs exactly, lowers the loss on new data, and the result keeps the model's pixel size, box
size and normalisation unless the data keys say otherwise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra_train import compose_train

from ais_torch import load_model
from ais_torch.archs.base import AisArch
from ais_torch.commands.train import train
from ais_torch.errors import ConfigError
from ais_torch.formats.scnt import read_scnt
from ais_torch.training.finetune import load_starting_model

QUIET = [
    "logger=none",
    "evaluate=false",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]


_compose = compose_train


def _reference(shared: Path) -> tuple[Path, Path]:
    ref = shared / "reference"
    model = ref / "models" / "Eman2" / "Membrane.scnm"
    scnt = ref / "training_sets" / "seed1" / "64x64x1_10.00Apx_Membrane.scnt"
    return model, scnt


def _loss_on(model: torch.nn.Module, scnt: Path) -> float:
    """Masked BCE of ``model`` on every box of a global_mad .scnt, boxes as they are."""
    boxes = read_scnt(scnt)
    x = torch.from_numpy(np.ascontiguousarray(boxes.images))
    y = torch.from_numpy(boxes.labels.astype(np.float32)[:, None])
    assert isinstance(model, AisArch)
    with torch.no_grad():
        return float(model.eval().compute_loss(model(x), y))


def test_the_start_is_the_loaded_model(shared_dir: Path) -> None:
    """The original's Keras model opens as a trainable network with the file's outputs."""
    path, scnt = _reference(shared_dir)
    start = load_starting_model(path)
    assert start.network.training and all(p.requires_grad for p in start.network.parameters())
    assert (start.metadata.apix, start.metadata.box_size) == (10.0, 64)
    assert start.metadata.normalization == "global_mad"
    x = torch.from_numpy(np.ascontiguousarray(read_scnt(scnt).images[:4]))
    with torch.no_grad():
        ours = start.network.eval()(x)
        loaded = load_model(str(path))(x)
    torch.testing.assert_close(ours, loaded, rtol=0, atol=0)
    # no overrides given: the data keep the model's geometry and its global normalisation
    kept = start.data_overrides({"box_size": None, "apix": None, "standardise_boxes": None})
    assert kept == {"box_size": 64, "apix": 10.0, "standardise_boxes": None}
    told = start.data_overrides({"box_size": 48, "apix": 20.0, "standardise_boxes": True})
    assert told == {"box_size": 48, "apix": 20.0, "standardise_boxes": True}


@pytest.mark.slow
def test_fine_tuning_the_originals_model_lowers_its_loss(shared_dir: Path, tmp_path: Path) -> None:
    path, scnt = _reference(shared_dir)
    cfg = _compose(
        ["data=scnt", f"data.scnt=[{scnt}]", f"init={path}", "title=Membrane",
         "data.batch_size=8", "trainer.max_steps=12", "arch.learning_rate=1e-4", *QUIET]
    )  # fmt: skip
    result = train(cfg, tmp_path)
    before, after = _loss_on(load_model(str(path)), scnt), _loss_on(result.model, scnt)
    assert after < 0.97 * before
    meta = load_model(str(result.model_path)).metadata
    assert (meta.apix, meta.box_size, meta.normalization) == (10.0, 64, "global_mad")
    assert (meta.arch, meta.arch_name, meta.framework) == ("Eman2", "eman2", "ais_torch")
    assert meta.arch_hparams["learning_rate"] == 1e-4


@pytest.mark.slow
def test_fine_tuning_our_model_keeps_its_pixel_and_box_size(tmp_path: Path) -> None:
    """A 20 Å, 32 px model trained by us goes on at 20 Å and 32 px on the plain demo data."""
    tiny = ["data.demo.shape=[24,128,128]", "data.demo.n_train=1", "data.demo.annotated_slices=2",
            "data.n_copies=1", "data.batch_size=8", "trainer.max_epochs=1",
            "trainer.limit_train_batches=2", *QUIET]  # fmt: skip
    first = train(_compose(["+experiment=membrane", "arch=unet_s", *tiny]), tmp_path / "a")
    made = load_model(str(first.model_path)).metadata
    assert (made.apix, made.box_size) == (20.0, 32)
    cfg = _compose([f"init={first.model_path}", "title=Membrane", *tiny])
    assert cfg.arch.name == "vggnet_m"  # the default arch group is ignored: the file's network
    again = train(cfg, tmp_path / "b")
    meta = load_model(str(again.model_path)).metadata
    assert (meta.apix, meta.box_size, meta.arch_name) == (20.0, 32, "unet")
    assert meta.normalization == made.normalization


def test_a_missing_model_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such model file"):
        load_starting_model(tmp_path / "nope.scnm")
