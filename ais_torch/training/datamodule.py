"""Lightning data module: .scnt sets and/or annotated tomograms → shuffled training batches.

All init arguments are plain values so a Hydra config can build it directly. Like the original,
there is no validation split by default; with ``val_fraction > 0`` the *boxes* (not their
augmented copies, which would leak) are split, stratified so that both parts keep positives.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader

from ais_torch.errors import AisInputError, ConfigError
from ais_torch.formats.mrc import read_volume
from ais_torch.training.boxes import concat, extract_boxes
from ais_torch.training.sampling import (
    SAMPLINGS,
    SLAB_Z_JITTER,
    BoxSamples,
    DihedralSamples,
    PerBatchSampler,
    SlabSamples,
    TrainingSamples,
    standardises,
)
from ais_torch.training.sources import LazyTomogram, open_volume

if TYPE_CHECKING:
    from ais_torch.formats.boxset import BoxSet

DEFAULT_BOX_SIZE = 64


def _paths(value: str | os.PathLike | Sequence[str | os.PathLike] | None) -> list[Path]:
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [Path(value)]
    return [Path(v) for v in value]


def _tomograms(
    value: str | os.PathLike | LazyTomogram | Sequence[str | os.PathLike | LazyTomogram] | None,
) -> list[Path | LazyTomogram]:
    """Tomogram files, or lazy tomograms (a copick run) that are opened, not read from a path."""
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike, LazyTomogram)):
        value = [value]
    return [v if isinstance(v, LazyTomogram) else Path(v) for v in value]


class AisDataModule(pl.LightningDataModule):
    """Training (and optional validation) batches of ``(x (B, D, S, S), y (B, 1, S, S))``.

    Parameters
    ----------
    scnt
        Training sets made by the original Ais or by ais_torch (``.scnt``).
    tomograms, labels
        Parallel lists: each tomogram (a file, or a :class:`~ais_torch.training.sources.
        LazyTomogram` such as a copick run's) with its label volume (0 negative, 1 feature,
        2 ignore).
    feature
        Name of the feature annotated in ``labels``.
    box_size
        Box edge in pixels; ``None`` = the .scnt sets' box size, else 64.
    apix
        Target pixel size (Å); ``None`` = the first .scnt's, else the first tomogram's.
    stride
        Step between boxes on annotated slices (default ``box_size // 2``).
    sampling
        ``"per_batch"`` (the original Ais 1.2.x's: a positive first in every batch, the rest
        from all boxes, ``n_copies × (boxes // batch_size)`` batches per epoch) or ``"copies"``
        (``n_copies`` copies per positive box and ``excess_negative`` percent more negatives);
        see :mod:`~ais_torch.training.sampling`.
    n_copies, excess_negative
        Copies per box (epoch length) and, for ``sampling="copies"``, extra negatives in percent.
    standardise_boxes
        Standardise each sample (zero mean, unit std); ``None`` = as the original: only boxes
        that were not normalised over their whole tomogram (``global_mad``).
    val_fraction
        Fraction of boxes held out for validation (0 = none, like the original).
    voxel_size_A
        Voxel size for tomograms whose header has none.
    depth, normalization
        Box depth (odd) and tomogram normalisation for extraction (``"global_mad"``/``"none"``).
    slab_depth
        Train a 3D slab network of this depth (``emits_slab``): boxes are extracted
        ``slab_depth + 16`` slices deep and sampled as :class:`~ais_torch.training.sampling.
        SlabSamples` (random Z crop and flip, loss only on the annotated slice); ``depth`` is
        then unused. Needs ``sampling="per_batch"``.
    """

    def __init__(
        self,
        scnt: Sequence[str] | str | None = None,
        tomograms: Sequence[str | LazyTomogram] | str | None = None,
        labels: Sequence[str] | str | None = None,
        feature: str = "feature",
        box_size: int | None = None,
        apix: float | None = None,
        stride: int | None = None,
        n_copies: int = 10,
        excess_negative: float = 30.0,
        batch_size: int = 32,
        val_fraction: float = 0.0,
        num_workers: int = 0,
        seed: int = 0,
        voxel_size_A: float | None = None,
        depth: int = 1,
        normalization: str = "global_mad",
        sampling: str = "per_batch",
        standardise_boxes: bool | None = None,
        slab_depth: int | None = None,
    ) -> None:
        super().__init__()
        self.scnt_paths = _paths(scnt)
        self.tomogram_paths = _tomograms(tomograms)
        self.label_paths = _paths(labels)
        if len(self.tomogram_paths) != len(self.label_paths):
            raise ConfigError(
                f"{len(self.tomogram_paths)} tomograms but {len(self.label_paths)} label volumes; "
                "give one label volume per tomogram (same order)"
            )
        if not self.scnt_paths and not self.tomogram_paths:
            raise ConfigError(
                "no training data: give scnt=[...] and/or tomograms=[...] with labels=[...]"
            )
        if not 0.0 <= float(val_fraction) < 1.0:
            raise ConfigError(f"val_fraction={val_fraction}: must be in [0, 1)")
        if sampling not in SAMPLINGS:
            raise ConfigError(f"sampling={sampling!r}: choose one of {', '.join(SAMPLINGS)}")
        if slab_depth is not None and (int(slab_depth) != slab_depth or slab_depth < 1):
            raise ConfigError(f"slab_depth={slab_depth}: must be a whole number of slices ≥ 1")
        if slab_depth is not None and sampling != "per_batch":
            raise ConfigError(
                f"sampling={sampling!r}: a 3D slab network trains with sampling=per_batch "
                "(random Z crops and flips); set data.sampling=per_batch"
            )
        if int(batch_size) < 1:
            raise ConfigError(f"batch_size={batch_size}: must be ≥ 1")
        self.feature = feature
        self._box_size_arg = box_size
        self._apix_arg = apix
        self.stride = stride
        self.n_copies = int(n_copies)
        self.excess_negative = float(excess_negative)
        self.batch_size = int(batch_size)
        self.val_fraction = float(val_fraction)
        self.num_workers = int(num_workers)
        self.seed = int(seed)
        self.voxel_size_A = voxel_size_A
        self.slab_depth = None if slab_depth is None else int(slab_depth)
        self.depth = int(depth) if slab_depth is None else int(slab_depth) + SLAB_Z_JITTER
        self.normalization = normalization
        self.sampling = sampling
        self.standardise_boxes = standardise_boxes
        self._boxset: BoxSet | None = None
        self.train_boxes: BoxSet | None = None
        self.val_boxes: BoxSet | None = None
        self.train_dataset: TrainingSamples | DihedralSamples | SlabSamples | None = None
        self.train_sampler: PerBatchSampler | None = None
        self.val_dataset: BoxSamples | SlabSamples | None = None

    # -- building -------------------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        """Read/extract all boxes once (idempotent), split them, build the datasets."""
        if self._boxset is not None:
            return
        sets = [self._read_scnt(p) for p in self.scnt_paths]
        box_size = self._box_size_arg or (sets[0].box_size if sets else DEFAULT_BOX_SIZE)
        apix = self._apix_arg or (sets[0].apix if sets else None)
        for tomo_path, label_path in zip(self.tomogram_paths, self.label_paths, strict=True):
            tomo = open_volume(tomo_path, voxel_size_A=self.voxel_size_A)
            lab = read_volume(label_path, voxel_size_A=tomo.voxel_size_A, check_finite=False)
            apix = apix or tomo.voxel_size_A
            sets.append(
                extract_boxes(
                    tomo,
                    lab,
                    feature=self.feature,
                    box_size=box_size,
                    apix=apix,
                    stride=self.stride,
                    depth=self.depth,
                    normalization=self.normalization,
                    slab=self.slab_depth is not None,
                )
            )
        boxset = concat(sets)
        if len(boxset) == 0:
            names = ", ".join(str(p) for p in self.label_paths + self.scnt_paths)
            raise AisInputError(
                f"{names}: no training boxes (no box holds a 1 or an annotated 0); annotate the "
                "feature and some background"
            )
        train_idx, val_idx = split_boxes(boxset, self.val_fraction, self.seed)
        self.train_boxes = boxset.subset(train_idx)
        self.val_boxes = boxset.subset(val_idx) if len(val_idx) else None
        standardise = self.standardise_boxes
        if self.slab_depth is not None:
            self.train_dataset = SlabSamples(self.train_boxes, self.slab_depth, standardise)
            self.train_sampler = PerBatchSampler(
                self.train_dataset, self.batch_size, self.n_copies, seed=self.seed
            )
            if self.val_boxes is not None:
                self.val_dataset = SlabSamples(
                    self.val_boxes, self.slab_depth, standardise, augment=False
                )
            self._boxset = boxset
            return
        if self.sampling == "per_batch":
            self.train_dataset = DihedralSamples(self.train_boxes, standardise)
            self.train_sampler = PerBatchSampler(
                self.train_dataset, self.batch_size, self.n_copies, seed=self.seed
            )
        else:
            self.train_dataset = TrainingSamples(
                self.train_boxes, self.n_copies, self.excess_negative, self.seed, standardise
            )
        if self.val_boxes is not None:
            self.val_dataset = BoxSamples(self.val_boxes, standardise)
        self._boxset = boxset

    def _read_scnt(self, path: Path) -> BoxSet:
        from ais_torch.formats.scnt import read_scnt

        return read_scnt(path)

    # -- what the trainer and the user see ----------------------------------------------

    @property
    def boxset(self) -> BoxSet:
        """All boxes (training + validation) after :meth:`setup`."""
        if self._boxset is None:
            raise RuntimeError("AisDataModule: call setup() first")
        return self._boxset

    @property
    def apix(self) -> float:
        return self.boxset.apix

    @property
    def box_size(self) -> int:
        return self.boxset.box_size

    @property
    def box_depth(self) -> int:
        return self.boxset.depth

    @property
    def z_jitter(self) -> int:
        """Slices a slab network's boxes hold beyond its depth (0 for other networks)."""
        return 0 if self.slab_depth is None else self.box_depth - self.slab_depth

    @property
    def model_normalization(self) -> str:
        """How a model trained on these samples wants its tomogram normalised (metadata).

        ``"global_mad"`` when the samples are globally normalised boxes left as they are (the
        tomogram is then normalised once, as a whole), else ``"per_slice"``.
        """
        if standardises(self.boxset, self.standardise_boxes):
            return "per_slice"
        return self.boxset.normalization

    def summary(self) -> str:
        """One line for the log: boxes, samples per epoch, validation boxes."""
        self.setup()
        assert self.train_dataset is not None
        if self.train_sampler is not None:
            sampler = self.train_sampler
            line = (
                f"{self.boxset.summary()} → {sampler.n_batches} batches of {self.batch_size} per "
                "epoch, each led by a positive box"
            )
        else:
            samples = self.train_dataset
            assert isinstance(samples, TrainingSamples)
            line = (
                f"{self.boxset.summary()} → {samples.n_positive_samples} positive + "
                f"{samples.n_negative_samples} negative samples per epoch"
            )
        if self.val_boxes is not None:
            line += (
                f"; validation: {self.val_boxes.n_positive} positive + "
                f"{self.val_boxes.n_negative} negative boxes"
            )
        return line

    def train_dataloader(self) -> DataLoader:
        self.setup()
        per_batch = self.train_sampler is not None
        return DataLoader(
            self.train_dataset,  # type: ignore[arg-type]
            batch_size=self.batch_size,
            shuffle=not per_batch,
            sampler=self.train_sampler,
            drop_last=per_batch,
            num_workers=self.num_workers,
            generator=None if per_batch else torch.Generator().manual_seed(self.seed),
            persistent_workers=self.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader | list:
        """Validation boxes, or ``[]`` when there is no split (Lightning then skips validation)."""
        self.setup()
        if self.val_dataset is None:
            return []
        return DataLoader(
            self.val_dataset,
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )


def split_boxes(boxes: BoxSet, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random ``(train, val)`` box indices, stratified by positive/negative.

    When a class has ≥ 2 boxes, each side gets at least one of it, so a small set still
    validates on positives and still trains on them.
    """
    n = len(boxes)
    if fraction <= 0:
        return np.arange(n), np.zeros(0, np.int64)
    rng = np.random.default_rng(seed)
    train, val = [], []
    for members in (np.flatnonzero(boxes.positives), np.flatnonzero(~boxes.positives)):
        members = rng.permutation(members)
        k = round(fraction * len(members))
        if len(members) >= 2:
            k = min(max(k, 1), len(members) - 1)
        else:
            k = 0
        val.append(members[:k])
        train.append(members[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))
