"""Intensity normalisation of tomograms and training boxes.

Every normalisation lives here; which one a model gets is decided once, from its metadata, by
:func:`ais_torch.segmentation.api.uses_global_mad`. The scopes, as in the original Ais:

* ``standardise_slices``: each slice on its own, ``(x - mean) / (std + 1e-6)`` with float64
  statistics — the original CLI's per-slice (legacy) normalisation, and each tile of the GUI's
  tiled mode;
* ``standardise``: every training sample, *after* augmentation, to zero mean / unit std, so that
  the network never sees absolute grey values (they differ between microscopes and
  reconstructions).
* ``global_mad``: one robust statistic per tomogram (mean and median absolute deviation of a
  central crop of ≤ 32 slices), applied to the whole volume before boxes are cut and before
  segmentation. The original's 1.2 ``.scnt`` sets and models record it as
  ``"normalization": "global_mad"``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ais_torch.errors import AisInputError

if TYPE_CHECKING:
    from ais_torch.formats.mrc import Volume

MAD_TO_SIGMA = 1.4826
"""Scale that turns a median absolute deviation into a Gaussian σ."""
MAD_EPS = 1e-7
N_STAT_SLICES = 32
BORDER_FRACTION = 0.2
MAX_BORDER_PX = 64
NORMALIZATIONS = ("none", "global_mad")


def standardise(x: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """Return ``(x - mean) / (std + eps)`` as float32, over the whole box (all slices)."""
    x = np.asarray(x, dtype=np.float32)
    mean = float(x.mean(dtype=np.float64))
    std = float(x.std(dtype=np.float64))
    return ((x - mean) / (std + eps)).astype(np.float32, copy=False)


PER_SLICE_EPS = 1e-6
"""The original CLI's per-slice (legacy) normalisation: ``(x - mean) / (std + 1e-6)``."""


def standardise_slices(
    x: np.ndarray, eps: float = PER_SLICE_EPS, *, flat_as_one: bool = False
) -> np.ndarray:
    """Each slice (the last two axes) to zero mean and unit std, as float32.

    ``flat_as_one``: a constant slice keeps std 1 (empty tiles at a tomogram's edge).
    """
    mean = x.mean(axis=(-2, -1), keepdims=True, dtype=np.float64)
    std = x.std(axis=(-2, -1), keepdims=True, dtype=np.float64)
    if flat_as_one:
        std[std == 0] = 1.0
    return ((x - mean) / (std + eps)).astype(np.float32, copy=False)


def stat_slices(n_z: int) -> np.ndarray:
    """The z indices global_mad samples: ≤ 32 evenly spaced slices (first and last included)."""
    if n_z < 1:
        raise ValueError("volume has no slices")
    return np.unique(np.linspace(0, n_z - 1, N_STAT_SLICES).astype(int))


def _border(n: int) -> int:
    return min(int(BORDER_FRACTION * n), MAX_BORDER_PX)


def global_mad_stats(volume: np.ndarray | Volume) -> tuple[float, float]:
    """``(center, scale)`` of a ``(z, y, x)`` volume (array, memmap or :class:`Volume`).

    center = mean and scale = 1.4826·MAD + 1e-7 of the sampled slices with 20 % (≤ 64 px) of
    each XY border cut away; the borders of a tomogram are often empty or bright with
    reconstruction artefacts. Only the sampled slices are read, so a memory-mapped 4 GB tomogram
    costs ≤ 32 slices of I/O.
    """
    # a Volume carries .data; an ndarray/memmap has a .data too (its raw buffer), so test first
    data = volume if isinstance(volume, np.ndarray) else getattr(volume, "data", volume)
    path = getattr(volume, "path", None)
    n_z, n_y, n_x = (int(n) for n in data.shape)
    by, bx = _border(n_y), _border(n_x)
    region = np.stack(
        [
            np.asarray(data[int(z)], dtype=np.float32)[by : n_y - by, bx : n_x - bx]
            for z in stat_slices(n_z)
        ]
    )
    if not np.isfinite(region).all():
        raise AisInputError(
            f"{path or 'volume'}: contains NaN/Inf; fix the reconstruction or replace them "
            "(e.g. numpy.nan_to_num) before normalising"
        )
    center = float(region.mean(dtype=np.float64))
    # in place: the region of a 4k x 4k tomogram is ~2 GB, so avoid copies of it
    median = float(np.median(region, overwrite_input=True))
    deviation = np.abs(np.subtract(region, np.float32(median), out=region), out=region)
    mad = float(np.median(deviation, overwrite_input=True))
    return center, MAD_TO_SIGMA * mad + MAD_EPS


def apply_global_mad(x: np.ndarray, center: float, scale: float) -> np.ndarray:
    """``(x - center) / scale`` as float32 (any shape: a slice, a slab or a box)."""
    return ((np.asarray(x, dtype=np.float32) - np.float32(center)) / np.float32(scale)).astype(
        np.float32, copy=False
    )
