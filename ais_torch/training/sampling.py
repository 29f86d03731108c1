"""Augmented training samples from a :class:`BoxSet` (the original Ais's sampling scheme).

* every positive box gives ``n_copies`` samples: copies 0..7 are the 8 exact dihedral
  transforms in order (as many as ``n_copies`` asks for), copies ≥ 8 random rotations;
* negatives are cycled (in a seeded random order, so a subset is spread over all tomograms and
  slices rather than the first ones) to ``round((1 + excess_negative/100) · n_copies · n_pos)``
  samples, each with a random dihedral transform;
* a set **without positives** (e.g. a tomogram where the feature is absent) gives
  ``n_copies`` samples per negative box — as many as each box would give if it were a positive —
  rather than none, which is what the original's formula yields;
* every sample is standardised (zero mean, unit std) after its transform.

The whole plan (index → box, transform) is drawn once from ``seed``: the same seed gives the
same samples whatever the number of data-loader workers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset

from ais_torch.errors import AisInputError, ConfigError
from ais_torch.segmentation.normalise import standardise
from ais_torch.segmentation.tta import N_DIHEDRAL, dihedral
from ais_torch.training.augment import rotate

if TYPE_CHECKING:
    from ais_torch.formats.boxset import BoxSet

_DIHEDRAL, _ROTATE = 0, 1


def n_negative_samples_for(n_pos: int, n_neg: int, n_copies: int, excess_negative: float) -> int:
    """How many negative samples a set with ``n_pos`` positive and ``n_neg`` negative boxes gets."""
    if n_neg == 0:
        return 0
    if n_pos == 0:
        return n_copies * n_neg
    return round((1.0 + excess_negative / 100.0) * n_copies * n_pos)


class TrainingSamples(Dataset):
    """``(x, y)`` pairs: x float32 ``(D, B, B)`` standardised, y float32 ``(1, B, B)`` ∈ {0, 1, 2}.

    Positives come first (``n_positive_samples`` of them), then negatives; shuffle in the
    data loader.
    """

    def __init__(
        self,
        boxes: BoxSet,
        n_copies: int = 10,
        excess_negative: float = 30.0,
        seed: int = 0,
    ) -> None:
        if int(n_copies) != n_copies or n_copies < 1:
            raise ConfigError(f"n_copies={n_copies}: must be a whole number ≥ 1 (e.g. 10)")
        if not np.isfinite(excess_negative) or excess_negative < 0:
            raise ConfigError(f"excess_negative={excess_negative}: must be ≥ 0 (percent, e.g. 30)")
        if len(boxes) == 0:
            raise AisInputError(
                f"{boxes.feature}: no training boxes (no positives and no negatives); annotate "
                "the feature (1) and some background (0) on at least one slice"
            )
        self.boxes = boxes
        self.n_copies = int(n_copies)
        self.excess_negative = float(excess_negative)
        rng = np.random.default_rng(seed)
        pos = np.flatnonzero(boxes.positives)
        neg = np.flatnonzero(~boxes.positives)

        # positives: copy c of box i -> dihedral c (c < 8) or a random angle (c >= 8)
        copies = np.arange(self.n_copies)
        pos_box = np.repeat(pos, self.n_copies)
        pos_kind = np.tile(np.where(copies < N_DIHEDRAL, _DIHEDRAL, _ROTATE), len(pos))
        pos_param = np.tile(copies.astype(np.float64), len(pos))
        n_rot = int((pos_kind == _ROTATE).sum())
        pos_param[pos_kind == _ROTATE] = rng.uniform(0.0, 360.0, n_rot)

        n_neg_samples = n_negative_samples_for(
            len(pos), len(neg), self.n_copies, self.excess_negative
        )
        order = rng.permutation(neg) if len(neg) else neg
        neg_box = order[np.arange(n_neg_samples) % len(neg)] if len(neg) else neg
        neg_kind = np.full(n_neg_samples, _DIHEDRAL)
        neg_param = rng.integers(0, N_DIHEDRAL, n_neg_samples).astype(np.float64)

        self._box = np.concatenate([pos_box, neg_box]).astype(np.int64)
        self._kind = np.concatenate([pos_kind, neg_kind]).astype(np.int8)
        self._param = np.concatenate([pos_param, neg_param])
        self.n_positive_samples = len(pos_box)
        self.n_negative_samples = int(n_neg_samples)

    def __len__(self) -> int:
        return len(self._box)

    def plan(self, index: int) -> tuple[int, str, float]:
        """``(box index, "dihedral" | "rotate", k or angle)`` of sample ``index``."""
        kind = "dihedral" if self._kind[index] == _DIHEDRAL else "rotate"
        return int(self._box[index]), kind, float(self._param[index])

    def sample(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Sample ``index`` as numpy: image ``(D, B, B)`` standardised, label ``(B, B)`` uint8."""
        box, kind, param = self.plan(index)
        image, label = self.boxes.images[box], self.boxes.labels[box]
        if kind == "dihedral":
            image, label = dihedral(image, int(param)), dihedral(label, int(param))
        else:
            image, label = rotate(image, label, param)
        return standardise(image), label

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = self.sample(index)
        return torch.from_numpy(image), torch.from_numpy(label.astype(np.float32)[None])


class BoxSamples(Dataset):
    """Every box once, untransformed and standardised (for validation)."""

    def __init__(self, boxes: BoxSet) -> None:
        self.boxes = boxes

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = standardise(self.boxes.images[index])
        label = self.boxes.labels[index].astype(np.float32)[None]
        return torch.from_numpy(image), torch.from_numpy(label)
