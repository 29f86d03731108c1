"""The GUI's tiled mode: boxes of the model's size, each normalised alone, centres stitched.

The original GUI (setting "tiled (legacy)") cuts a slice into ``box × box`` tiles with a
fractional ``overlap``, standardises every tile by its own mean and std, predicts each tile and
keeps only its central part (``OVERLAP_MODE`` 1: a margin of ``int(overlap · box / 2)`` px is
dropped on every side). We keep that, but cover the whole slice: it is reflect-padded by the
margin (plus what the last tile needs), the stride is ``box − 2·margin``, and every pixel is
taken from the centre of exactly one tile — no uncovered right/bottom strip as in 1.0.40.
Tiles match what the model saw in training (boxes normalised one by one).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ais_torch.errors import AisInputError
from ais_torch.segmentation.normalise import standardise_slices

TILE_EPS = 1e-7


@dataclass(frozen=True)
class TileGrid:
    height: int
    width: int
    box: int
    overlap: float

    def __post_init__(self) -> None:
        if self.box < 8:
            raise AisInputError(f"box_size={self.box}: tiles must be at least 8 px")
        if not 0.0 <= self.overlap < 1.0:
            raise AisInputError(f"overlap={self.overlap}: must be in [0, 1)")
        if self.step < 1:
            raise AisInputError(
                f"overlap={self.overlap} leaves no tile centre at box_size={self.box}; lower it"
            )

    @property
    def margin(self) -> int:
        return int(self.overlap * self.box / 2)

    @property
    def step(self) -> int:
        return self.box - 2 * self.margin

    def _count(self, size: int) -> int:
        return max(1, -(-size // self.step))

    @property
    def shape(self) -> tuple[int, int]:
        """Tiles along (y, x)."""
        return self._count(self.height), self._count(self.width)

    @property
    def n_tiles(self) -> int:
        ny, nx = self.shape
        return ny * nx

    def _pad(self, size: int) -> tuple[int, int]:
        covered = self._count(size) * self.step
        return self.margin, self.margin + covered - size

    def tiles(self, slices: np.ndarray, *, standardise: bool = True) -> np.ndarray:
        """``(n, h, w)`` → tiles ``(n, T, box, box)`` float32, each standardised alone."""
        n = slices.shape[0]
        py, px = self._pad(self.height), self._pad(self.width)
        mode = "reflect" if min(self.height, self.width) > 1 else "edge"
        padded = np.pad(np.asarray(slices, np.float32), ((0, 0), py, px), mode=mode)
        ny, nx = self.shape
        windows = np.lib.stride_tricks.sliding_window_view(
            padded, (self.box, self.box), axis=(1, 2)
        )[:, :: self.step, :: self.step][:, :ny, :nx]
        t = windows.reshape(n, ny * nx, self.box, self.box).astype(np.float32)
        if not standardise:
            return t
        return standardise_slices(t, TILE_EPS, flat_as_one=True)

    def stitch(self, pred: np.ndarray, n: int) -> np.ndarray:
        """Tile predictions ``(n·T, box, box)`` → ``(n, h, w)`` from the tile centres."""
        ny, nx = self.shape
        m, s = self.margin, self.step
        centres = pred.reshape(n, ny, nx, self.box, self.box)[:, :, :, m : m + s, m : m + s]
        full = centres.transpose(0, 1, 3, 2, 4).reshape(n, ny * s, nx * s)
        return np.ascontiguousarray(full[:, : self.height, : self.width])
