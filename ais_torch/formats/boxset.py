"""``BoxSet``: training boxes of one feature at one pixel size, in memory.

The shape both training and the ``.scnt`` format share (so it lives with the formats): images,
labels with 0 = negative, 1 = positive, 2 = ignore, the pixel size, and where each box came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

NEGATIVE, POSITIVE, IGNORE = 0, 1, 2


@dataclass(eq=False)
class BoxSet:
    """Training boxes of one feature at one pixel size.

    ``images`` float32 ``(N, D, B, B)`` (D = box depth, odd, usually 1), ``labels`` uint8
    ``(N, B, B)`` with 0 = negative, 1 = positive, 2 = ignore (label of the central slice),
    ``apix`` the pixel size of the boxes (Å), ``sources`` one dict per box (``tomogram``,
    ``path``, ``z``, ``y``, ``x`` = box centre in tomogram voxels, ``feature``, ...),
    ``normalization`` how ``images`` were normalised before cutting (``"none"``,
    ``"global_mad"``).
    """

    images: np.ndarray
    labels: np.ndarray
    apix: float
    feature: str
    sources: list[dict[str, Any]] = field(default_factory=list)
    normalization: str = "none"

    def __post_init__(self) -> None:
        images = np.asarray(self.images, dtype=np.float32)
        if images.ndim == 3:
            images = images[:, None]
        labels = np.asarray(self.labels)
        if images.ndim != 4 or labels.ndim != 3:
            raise ValueError(
                f"BoxSet needs images (N, D, B, B) and labels (N, B, B); got {images.shape} "
                f"and {labels.shape}"
            )
        if images.shape[0] != labels.shape[0] or images.shape[2:] != labels.shape[1:]:
            raise ValueError(f"images {images.shape} and labels {labels.shape} do not match")
        if images.shape[2] != images.shape[3]:
            raise ValueError(f"boxes must be square, got {images.shape[2:]}")
        self.images = images
        self.labels = labels.astype(np.uint8, copy=False)
        self.apix = float(self.apix)
        if not self.sources:
            self.sources = [{} for _ in range(len(images))]
        if len(self.sources) != len(images):
            raise ValueError(f"{len(self.sources)} sources for {len(images)} boxes")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def box_size(self) -> int:
        return int(self.images.shape[-1])

    @property
    def depth(self) -> int:
        return int(self.images.shape[1])

    @property
    def positives(self) -> np.ndarray:
        """Boolean ``(N,)``: boxes that contain the feature (any label 1)."""
        return (self.labels == POSITIVE).any(axis=(1, 2))

    @property
    def n_positive(self) -> int:
        return int(self.positives.sum())

    @property
    def n_negative(self) -> int:
        return len(self) - self.n_positive

    def subset(self, indices: np.ndarray | Sequence[int]) -> BoxSet:
        """The boxes at ``indices`` (e.g. a validation split), sharing nothing with ``self``."""
        idx = np.asarray(indices, dtype=np.int64)
        return BoxSet(
            images=self.images[idx],
            labels=self.labels[idx],
            apix=self.apix,
            feature=self.feature,
            sources=[dict(self.sources[int(i)]) for i in idx],
            normalization=self.normalization,
        )

    def summary(self) -> str:
        b, d = self.box_size, self.depth
        return (
            f"{self.feature}: {self.n_positive} positive boxes, {self.n_negative} negative boxes "
            f"({b}x{b}x{d} px at {self.apix:g} Å)"
        )
