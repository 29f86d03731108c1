"""The Lightning data module: tomograms and/or .scnt in, shuffled batches out."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import mrcfile
import numpy as np
import pytest
import torch

from ais_torch.errors import AisInputError, ConfigError
from ais_torch.formats.mrc import read_volume, write_volume
from ais_torch.formats.scnt import write_scnt
from ais_torch.training.boxes import extract_boxes
from ais_torch.training.datamodule import AisDataModule, split_boxes


def _pair(folder: Path, name: str = "tomo", voxel: float | None = 10.0) -> tuple[Path, Path]:
    """A 6 x 64 x 64 tomogram with a dark band annotated on slices 2 and 3."""
    rng = np.random.default_rng(0)
    data = rng.normal(size=(6, 64, 64)).astype(np.float32)
    labels = np.zeros((6, 64, 64), np.int8)
    data[:, 20:26, 8:56] -= 3.0
    labels[2:4, 20:26, 8:56] = 1
    tomo = folder / f"{name}.mrc"
    if voxel is None:
        with mrcfile.new(tomo) as mrc:
            mrc.set_data(data)
    else:
        write_volume(tomo, data, voxel_size_A=voxel)
    lab = write_volume(folder / f"{name}_membrane.mrc", labels, voxel_size_A=10.0)
    return tomo, lab


def test_counts_batches_and_summary(tmp_path: Path) -> None:
    tomo, lab = _pair(tmp_path)
    dm = AisDataModule(
        tomograms=[str(tomo)],
        labels=[str(lab)],
        feature="Membrane",
        box_size=32,
        n_copies=4,
        batch_size=8,
        sampling="copies",
    )
    dm.setup("fit")
    # per slice 3 x 3 boxes at stride 16; the band (y 20..25) touches rows y0 = 0 and 16
    assert (dm.boxset.n_positive, dm.boxset.n_negative) == (12, 6)
    assert (dm.apix, dm.box_size, dm.box_depth) == (10.0, 32, 1)
    assert len(dm.train_dataset) == 12 * 4 + round(1.3 * 4 * 12)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 1, 32, 32) and y.shape == (8, 1, 32, 32)
    assert dm.val_dataloader() == []
    assert dm.summary().startswith("Membrane: 12 positive boxes, 6 negative boxes")
    assert "48 positive + 62 negative samples" in dm.summary()


def test_per_batch_sampling_is_the_default(tmp_path: Path) -> None:
    """The original's stream: n_copies x (boxes // batch) batches, each led by a positive."""
    tomo, lab = _pair(tmp_path)
    dm = AisDataModule(tomograms=tomo, labels=lab, feature="Membrane", box_size=32, n_copies=4,
                       batch_size=8)  # fmt: skip
    batches = list(dm.train_dataloader())
    assert len(batches) == 4 * (18 // 8)
    assert all(x.shape == (8, 1, 32, 32) for x, _ in batches)
    assert all((y[0] == 1).any() for _, y in batches)  # the first box of each holds the feature
    assert "8 batches of 8 per epoch, each led by a positive box" in dm.summary()
    # boxes cut from the globally normalised tomogram stay as they are; the model says so
    assert dm.boxset.normalization == "global_mad" and dm.model_normalization == "global_mad"
    again = AisDataModule(tomograms=tomo, labels=lab, box_size=32, standardise_boxes=True)
    again.setup()
    assert again.model_normalization == "per_slice"


def test_validation_split_is_by_box_and_stratified(tmp_path: Path) -> None:
    tomo, lab = _pair(tmp_path)
    dm = AisDataModule(
        tomograms=tomo, labels=lab, box_size=32, n_copies=2, val_fraction=0.25, sampling="copies"
    )
    dm.setup()
    assert dm.train_boxes is not None and dm.val_boxes is not None
    assert (dm.val_boxes.n_positive, dm.val_boxes.n_negative) == (3, 2)
    assert (dm.train_boxes.n_positive, dm.train_boxes.n_negative) == (9, 4)
    key = [(s["z"], s["y"], s["x"]) for s in dm.val_boxes.sources]
    assert not set(key) & {(s["z"], s["y"], s["x"]) for s in dm.train_boxes.sources}
    assert len(dm.train_dataset) == 9 * 2 + round(1.3 * 2 * 9)
    assert sum(len(b[0]) for b in dm.val_dataloader()) == 5
    for fraction in (0.01, 0.99):  # however small or large the split, both keep a positive
        train, val = split_boxes(dm.boxset, fraction, seed=0)
        assert dm.boxset.positives[train].any() and dm.boxset.positives[val].any()
        assert (~dm.boxset.positives[train]).any() and (~dm.boxset.positives[val]).any()


def test_same_seed_same_batches(tmp_path: Path) -> None:
    tomo, lab = _pair(tmp_path)
    batches = []
    for _ in range(2):
        dm = AisDataModule(tomograms=tomo, labels=lab, box_size=32, n_copies=10, seed=3)
        batches.append(next(iter(dm.train_dataloader())))
    torch.testing.assert_close(batches[0], batches[1], rtol=0, atol=0)


def test_scnt_and_tomograms_pool_at_the_scnt_geometry(tmp_path: Path) -> None:
    tomo, lab = _pair(tmp_path)
    other, other_lab = _pair(tmp_path, "other", voxel=5.0)  # rescaled to the .scnt's 10 Å
    boxes = extract_boxes(read_volume(tomo), read_volume(lab), feature="Membrane", box_size=32)
    saved = write_scnt(tmp_path / "32x32x1_Membrane.scnt", boxes)
    dm = AisDataModule(scnt=[str(saved)], tomograms=[other], labels=[other_lab], feature="Membrane")
    dm.setup()
    assert (dm.box_size, dm.apix) == (32, 10.0)
    # other: 64 x 64 px at 5 Å -> 32 x 32 px at 10 Å: one box per annotated slice, band halved
    assert len(dm.boxset) == len(boxes) + 2
    assert [int((lbl == 1).sum()) for lbl in dm.boxset.labels[-2:]] == [3 * 24, 3 * 24]
    assert dm.boxset.feature == "Membrane"


def test_missing_voxel_size_needs_the_override(tmp_path: Path) -> None:
    tomo, lab = _pair(tmp_path, voxel=None)
    with pytest.raises(AisInputError, match="voxel size") as err:
        AisDataModule(tomograms=tomo, labels=lab, box_size=32).setup()
    assert "tomo.mrc" in str(err.value)
    dm = AisDataModule(tomograms=tomo, labels=lab, box_size=32, voxel_size_A=12.0)
    dm.setup()
    assert dm.apix == 12.0


@pytest.mark.parametrize("which", ["tomograms", "labels", "scnt"])
def test_bad_paths_name_the_file(tmp_path: Path, which: str) -> None:
    tomo, lab = _pair(tmp_path)
    kwargs = {"tomograms": [tomo], "labels": [lab]}
    kwargs[which] = [tmp_path / "missing.xyz"]
    with pytest.raises(AisInputError, match=r"missing\.xyz"):
        AisDataModule(**kwargs, box_size=32).setup()


def test_inconsistent_arguments_are_config_errors(tmp_path: Path) -> None:
    tomo, lab = _pair(tmp_path)
    with pytest.raises(ConfigError, match="one label volume per tomogram"):
        AisDataModule(tomograms=[tomo, tomo], labels=[lab])
    with pytest.raises(ConfigError, match="no training data"):
        AisDataModule()
    with pytest.raises(ConfigError, match="val_fraction"):
        AisDataModule(tomograms=tomo, labels=lab, val_fraction=1.0)


class _Tiny(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 3, padding=1)

    def _loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        keep = y != 2
        return ((self.conv(x) - (y == 1).float()) ** 2)[keep].mean()

    def training_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
        return self._loss(batch)

    def validation_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
        self.log("val_loss", self._loss(batch))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("val_fraction", [0.0, 0.3])
def test_lightning_trains_with_and_without_validation(tmp_path: Path, val_fraction: float) -> None:
    tomo, lab = _pair(tmp_path)
    dm = AisDataModule(
        tomograms=tomo,
        labels=lab,
        box_size=32,
        n_copies=2,
        batch_size=16,
        val_fraction=val_fraction,
    )
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(_Tiny(), datamodule=dm)
    assert trainer.global_step == 2 * max(len(dm.train_boxes) // 16, 1)  # copies x boxes // batch
    assert ("val_loss" in trainer.callback_metrics) == (val_fraction > 0)
