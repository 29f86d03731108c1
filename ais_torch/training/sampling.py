"""Augmented training samples from a :class:`BoxSet`, drawn one of two ways (``sampling=``).

``per_batch`` — the original Ais 1.2.x's stream (:class:`PerBatchSampler` over
:class:`DihedralSamples`): an epoch is ``n_copies × (n_boxes // batch_size)`` batches; the first
sample of every batch is a positive box (the positives cycled in a shuffled order), the others
are drawn from all boxes (a shuffled pass, reshuffled when used up); every sample gets one random
dihedral transform (16 with a Z flip for boxes deeper than 1 slice). No random-angle rotations.

``copies`` — ais_torch's first scheme (:class:`TrainingSamples`), a fixed, shuffled epoch:

* every positive box gives ``n_copies`` samples: copies 0..7 are the 8 exact dihedral
  transforms in order (as many as ``n_copies`` asks for), copies ≥ 8 random rotations;
* negatives are cycled (in a seeded random order, so a subset is spread over all tomograms and
  slices rather than the first ones) to ``round((1 + excess_negative/100) · n_copies · n_pos)``
  samples, each with a random dihedral transform;
* a set **without positives** (e.g. a tomogram where the feature is absent) gives
  ``n_copies`` samples per negative box — as many as each box would give if it were a positive —
  rather than none, which is what the original's formula yields;

Both standardise a sample (zero mean, unit std) after its transform only when the boxes were not
normalised over the whole tomogram beforehand (``BoxSet.normalization != "global_mad"``), as the
original does: a global_mad model is applied to the globally normalised tomogram, not slice by
slice, so it must not learn on re-standardised boxes (:func:`standardises`).

The whole plan (index → box, transform) is drawn once from ``seed``: the same seed gives the
same samples whatever the number of data-loader workers.

3D slab networks (``emits_slab``) train on :class:`SlabSamples`: boxes stored
:data:`SLAB_Z_JITTER` slices deeper than the network, the annotated slice in the middle; each
sample is a random Z crop of the network's depth that holds the annotated slice (so it lands at
every depth of the slab, as in the original 1.2.40), a random Z flip and a dihedral transform; the
label is that slice's, every other slice is 2 (ignore), so the masked losses supervise only it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset

from ais_torch.errors import AisInputError, ConfigError
from ais_torch.formats.boxset import IGNORE
from ais_torch.segmentation.normalise import standardise
from ais_torch.segmentation.tta import N_DIHEDRAL, dihedral
from ais_torch.training.augment import rotate

if TYPE_CHECKING:
    from ais_torch.formats.boxset import BoxSet

_DIHEDRAL, _ROTATE = 0, 1
SAMPLINGS = ("per_batch", "copies")
SLAB_Z_JITTER = 16
"""Extra slices (8 above, 8 below) a slab network's boxes are stored with, as the original's."""
GLOBAL_NORMALISATION = "global_mad"


def standardises(boxes: BoxSet, standardise_boxes: bool | None = None) -> bool:
    """Whether samples of ``boxes`` are standardised one by one (``None``: as the original)."""
    if standardise_boxes is not None:
        return bool(standardise_boxes)
    return boxes.normalization != GLOBAL_NORMALISATION


def require_boxes(boxes: BoxSet) -> None:
    """Refuse an empty set with what to annotate (nothing to sample from)."""
    if len(boxes) == 0:
        raise AisInputError(
            f"{boxes.feature}: no training boxes (no positives and no negatives); annotate "
            "the feature (1) and some background (0) on at least one slice"
        )


def n_transforms_for(boxes: BoxSet) -> int:
    """8 dihedral transforms, 16 (each also flipped in Z) for boxes deeper than one slice."""
    return 2 * N_DIHEDRAL if boxes.depth > 1 else N_DIHEDRAL


def transformed(image: np.ndarray, label: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Dihedral ``k % 8`` of an image ``(D, B, B)`` and its label; ``k ≥ 8`` also flips Z."""
    image, label = dihedral(image, k % N_DIHEDRAL), dihedral(label, k % N_DIHEDRAL)
    if k >= N_DIHEDRAL:
        image = np.ascontiguousarray(image[::-1])
    return image, label


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
        standardise_boxes: bool | None = None,
    ) -> None:
        if int(n_copies) != n_copies or n_copies < 1:
            raise ConfigError(f"n_copies={n_copies}: must be a whole number ≥ 1 (e.g. 10)")
        if not np.isfinite(excess_negative) or excess_negative < 0:
            raise ConfigError(f"excess_negative={excess_negative}: must be ≥ 0 (percent, e.g. 30)")
        require_boxes(boxes)
        self.boxes = boxes
        self.standardise = standardises(boxes, standardise_boxes)
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
        """Sample ``index`` as numpy: image ``(D, B, B)``, label ``(B, B)`` uint8."""
        box, kind, param = self.plan(index)
        image, label = self.boxes.images[box], self.boxes.labels[box]
        if kind == "dihedral":
            image, label = transformed(image, label, int(param))
        else:
            image, label = rotate(image, label, param)
        return (standardise(image) if self.standardise else image), label

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return _as_tensors(*self.sample(index))


def _as_tensors(image: np.ndarray, label: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    image = np.ascontiguousarray(image, dtype=np.float32)
    return torch.from_numpy(image), torch.from_numpy(label.astype(np.float32)[None])


class DihedralSamples(Dataset):
    """Every box under every transform: index ``box × n_transforms + k`` (see :func:`transformed`).

    The dataset of ``sampling=per_batch``; :class:`PerBatchSampler` chooses the indices.
    """

    def __init__(self, boxes: BoxSet, standardise_boxes: bool | None = None) -> None:
        require_boxes(boxes)
        self.boxes = boxes
        self.standardise = standardises(boxes, standardise_boxes)
        self.n_transforms = n_transforms_for(boxes)

    def __len__(self) -> int:
        return len(self.boxes) * self.n_transforms

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        box, k = divmod(int(index), self.n_transforms)
        image, label = transformed(self.boxes.images[box], self.boxes.labels[box], k)
        return _as_tensors(standardise(image) if self.standardise else image, label)


class PerBatchSampler(torch.utils.data.Sampler[int]):
    """Indices into :class:`DihedralSamples` drawn as the original Ais 1.2.x draws its batches.

    One epoch yields ``n_copies × max(n_boxes // batch_size, 1) × batch_size`` indices; every
    ``batch_size``-th (the first of each batch) is a positive box, the rest come from a shuffled
    pass over all boxes. Each epoch is drawn from ``(seed, epoch)``; Lightning calls
    :meth:`set_epoch` (and wraps the sampler for DDP).
    """

    def __init__(
        self,
        samples: DihedralSamples | SlabSamples,
        batch_size: int,
        n_copies: int,
        seed: int = 0,
    ):
        if int(n_copies) != n_copies or n_copies < 1:
            raise ConfigError(f"n_copies={n_copies}: must be a whole number ≥ 1 (e.g. 4)")
        self.samples = samples
        self.batch_size = int(batch_size)
        self.n_copies = int(n_copies)
        self.seed = int(seed)
        self.epoch = 0
        self.positives = np.flatnonzero(samples.boxes.positives)
        self.n_batches = self.n_copies * max(len(samples.boxes) // self.batch_size, 1)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n_batches * self.batch_size

    def boxes_of_epoch(self) -> np.ndarray:
        """The box of every sample of this epoch, in order (positives at each batch start)."""
        rng = np.random.default_rng([self.seed, self.epoch])
        n_boxes, n = len(self.samples.boxes), len(self)
        passes = -(-n // n_boxes)
        boxes = np.concatenate([rng.permutation(n_boxes) for _ in range(passes)])[:n]
        if len(self.positives):
            starts = np.arange(0, n, self.batch_size)
            cycles = -(-len(starts) // len(self.positives))
            order = np.concatenate([rng.permutation(self.positives) for _ in range(cycles)])
            boxes[starts] = order[: len(starts)]
        return boxes

    def __iter__(self) -> Iterator[int]:
        boxes = self.boxes_of_epoch()
        rng = np.random.default_rng([self.seed, self.epoch, 1])
        k = rng.integers(0, self.samples.n_transforms, len(boxes))
        return iter((boxes * self.samples.n_transforms + k).tolist())


class BoxSamples(Dataset):
    """Every box once, untransformed (standardised as in training; for validation)."""

    def __init__(self, boxes: BoxSet, standardise_boxes: bool | None = None) -> None:
        self.boxes = boxes
        self.standardise = standardises(boxes, standardise_boxes)

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = self.boxes.images[index], self.boxes.labels[index]
        return _as_tensors(standardise(image) if self.standardise else image, label)


def slab_offsets(stored: int, depth: int) -> range:
    """Starts of the ``depth``-slice Z crops of a ``stored``-slice box that hold its annotated
    slice (index ``stored // 2``, where extraction and the original's .scnt put it)."""
    centre = stored // 2
    return range(max(0, centre - depth + 1), min(stored - depth, centre) + 1)


def slab_sample(
    image: np.ndarray, label: np.ndarray, depth: int, offset: int, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Crop ``image (S, B, B)`` to ``depth`` slices from ``offset``; the label slab ``(depth, B,
    B)`` is ``label`` on the annotated slice and 2 (ignore) elsewhere; then dihedral ``k % 8`` in
    XY and, for ``k ≥ 8``, a Z flip of both."""
    x = image[offset : offset + depth]
    y = np.full((depth, *label.shape), IGNORE, np.uint8)
    y[image.shape[0] // 2 - offset] = label
    x, y = dihedral(x, k % N_DIHEDRAL), dihedral(y, k % N_DIHEDRAL)
    if k >= N_DIHEDRAL:
        x, y = x[::-1], y[::-1]
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


class SlabSamples(Dataset):
    """Samples for a 3D slab network: ``x (1, D, B, B)`` and ``y (1, D, B, B)`` ∈ {0, 1, 2}.

    ``augment``: index ``box × n_transforms + j`` picks one Z crop (:func:`slab_offsets`) and one
    of the 16 transforms (8 dihedral × Z flip), so :class:`PerBatchSampler` draws both at random
    from its seed; otherwise every box once, cropped in the middle (validation).
    """

    def __init__(
        self,
        boxes: BoxSet,
        depth: int,
        standardise_boxes: bool | None = None,
        *,
        augment: bool = True,
    ) -> None:
        require_boxes(boxes)
        if boxes.depth < depth:
            source = boxes.sources[0].get("path") if boxes.sources else None
            raise AisInputError(
                f"{source or boxes.feature}: boxes are {boxes.depth} slice(s) deep but the slab "
                f"network takes {depth}; extract them again for this network (ais_torch stores "
                f"{depth + SLAB_Z_JITTER}) or set arch.depth to at most {boxes.depth}"
            )
        self.boxes = boxes
        self.depth = int(depth)
        self.standardise = standardises(boxes, standardise_boxes)
        self.augment = augment
        self.offsets = slab_offsets(boxes.depth, self.depth)
        self.n_transforms = 2 * N_DIHEDRAL * len(self.offsets) if augment else 1

    def __len__(self) -> int:
        return len(self.boxes) * self.n_transforms

    def plan(self, index: int) -> tuple[int, int, int]:
        """``(box, crop start, transform k)`` of sample ``index``."""
        box, j = divmod(int(index), self.n_transforms)
        if not self.augment:
            return box, (self.boxes.depth - self.depth) // 2, 0
        k, o = divmod(j, len(self.offsets))
        return box, self.offsets[o], k

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        box, offset, k = self.plan(index)
        x, y = slab_sample(self.boxes.images[box], self.boxes.labels[box], self.depth, offset, k)
        x = standardise(x) if self.standardise else x
        return torch.from_numpy(x.astype(np.float32)[None]), torch.from_numpy(
            y.astype(np.float32)[None]
        )
