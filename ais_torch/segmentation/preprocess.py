"""Segmentation that reproduces the original Ais 1.2.40 ``ais segment`` output.

Recipe (facts from the reference kit's MANIFEST and the behaviour notes on the original CLI):

1. Normalise: ``"global_mad"`` models → one robust statistic of the WHOLE volume
   (:func:`ais_torch.segmentation.normalise.global_mad_stats`); legacy models → each slice to
   ``(x - mean) / (std + 1e-6)``.
2. Rescale XY to the model's pixel size (skimage ``resize``, order 1, anti-aliased) only when
   ``|data_apix / model_apix - 1| >= 0.05``.
3. Reflect-pad Y and X to a multiple of 32 plus 64 (256 → 320, 32 px each side).
4. Every slice through the network for each test-time orientation ``k`` (rot90 by ``k % 4`` in
   (y, x), then flip x for k ≥ 4), undo the orientation, crop, average.
5. ``clip(mean, 0, 1)``, resize back to the input XY size (order 1) when rescaled, then
   ``(p * 255).astype(uint8)`` — truncation, as the original does.

Steps 1–3 and 5 live in :class:`AisRecipe`; the streaming engine
(:mod:`ais_torch.segmentation.engine`) runs step 4 between them. The tests keep a small,
independent reference loop over the same recipe (``tests/segmentation/reference_loop.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.ndimage import zoom
from skimage.transform import resize

from ais_torch.segmentation.normalise import (
    apply_global_mad,
    global_mad_stats,
    standardise_slices,
)

if TYPE_CHECKING:
    from ais_torch.formats.scnm import ModelMetadata

RESCALE_TOLERANCE = 0.05
"""Relative pixel-size difference from which the original rescales (``>=``)."""
PAD_MULTIPLE = 32
CONTEXT_PX = 32
"""Context the original adds on every side before inference (a multiple of 32 plus 64)."""
DEFAULT_APIX = 10.0
"""Voxel size the original assumes when the header has none (0)."""


def padding_for(size: int, multiple: int, context: int = CONTEXT_PX) -> tuple[int, int]:
    """Pixels before/after ``size``: ``context`` each side, total a multiple of ``multiple``."""
    total = size + 2 * context
    total = -(-total // multiple) * multiple
    extra = total - size
    return extra // 2, extra - extra // 2


def rescale_factor(data_apix: float, model_apix: float) -> float | None:
    """``data_apix / model_apix`` when the original would rescale, else ``None``."""
    data_apix = float(data_apix) if data_apix and data_apix > 0 else DEFAULT_APIX
    if not model_apix or model_apix <= 0:
        return None
    factor = data_apix / float(model_apix)
    return factor if abs(factor - 1.0) >= RESCALE_TOLERANCE else None


def resize_to_model(x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Slices to the model's pixel size as the original's ``scale_volume_xy``: skimage
    ``resize`` (order 1, anti-aliased when shrinking). The original resizes the whole volume
    with Z unchanged, which filters and interpolates each slice alone, so slabs give the same.
    Training boxes are resampled with this too (:mod:`ais_torch.training.boxes`), so a model
    sees at training what it sees at segmentation."""
    out = np.empty((x.shape[0], *shape), np.float32)
    for i, s in enumerate(x):
        out[i] = resize(s, shape, order=1, anti_aliasing=True, preserve_range=True)
    return out


def _resize_out(p: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Predictions back to the tomogram's grid as the original: ``scipy.ndimage.zoom``, order 1,
    no prefilter, corners aligned (``grid_mode=False``) — not skimage's half-pixel grid, which
    shifts every output pixel by up to half an input pixel."""
    factors = (1.0, shape[0] / p.shape[1], shape[1] / p.shape[2])
    return zoom(np.ascontiguousarray(p, np.float32), factors, order=1, prefilter=False)


def encode_uint8(p: np.ndarray) -> np.ndarray:
    """Probabilities in [0, 1] → the original's 0–255 encoding (truncation, not rounding)."""
    return (np.asarray(p, dtype=np.float32) * 255).astype(np.uint8)


@dataclass(frozen=True)
class AisRecipe:
    """The original's pre- and post-processing of one tomogram for one model.

    Built once per (tomogram, model) by :meth:`for_volume`; :meth:`prepare` and :meth:`finish`
    then work on any run of whole slices, so slabs streamed one after the other give exactly
    the result of processing the volume at once.
    """

    shape_yx: tuple[int, int]
    """The tomogram's (y, x) size; outputs have it."""
    stats: tuple[float, float] | None
    """global_mad ``(center, scale)``; ``None`` = legacy per-slice normalisation."""
    factor: float | None
    """XY rescale factor (data apix / model apix) or ``None`` for no rescaling."""
    work_shape: tuple[int, int]
    """(y, x) size the network sees before padding."""
    pad_y: tuple[int, int]
    pad_x: tuple[int, int]

    @classmethod
    def for_volume(
        cls,
        data: np.ndarray,
        metadata: ModelMetadata | None,
        voxel_size_A: float,
        *,
        multiple: int = PAD_MULTIPLE,
        factor: float | str | None = "auto",
        stats: tuple[float, float] | str | None = "auto",
    ) -> AisRecipe:
        """The recipe for ``data`` (z, y, x) and a model's ``metadata``.

        ``stats="auto"`` computes the global_mad statistic when the model records it.
        """
        if isinstance(stats, str):
            normalization = str(getattr(metadata, "normalization", "per_slice") or "per_slice")
            stats = global_mad_stats(data) if normalization == "global_mad" else None
        shape = (int(data.shape[-2]), int(data.shape[-1]))
        return cls.for_shape(
            shape, metadata, voxel_size_A, multiple=multiple, factor=factor, stats=stats
        )

    @classmethod
    def for_shape(
        cls,
        shape_yx: tuple[int, int],
        metadata: ModelMetadata | None,
        voxel_size_A: float,
        *,
        multiple: int = PAD_MULTIPLE,
        factor: float | str | None = "auto",
        stats: tuple[float, float] | None = None,
    ) -> AisRecipe:
        """The recipe for slices of ``shape_yx``; ``factor="auto"`` applies the original's 5 %
        rule to ``voxel_size_A`` and the model's ``apix``."""
        n_y, n_x = (int(n) for n in shape_yx)
        if isinstance(factor, str):
            factor = rescale_factor(voxel_size_A, float(getattr(metadata, "apix", -1.0)))
        if factor is not None:
            work = (max(1, round(n_y * factor)), max(1, round(n_x * factor)))
        else:
            work = (n_y, n_x)
        return cls(
            shape_yx=(n_y, n_x),
            stats=stats,
            factor=factor,
            work_shape=work,
            pad_y=padding_for(work[0], multiple),
            pad_x=padding_for(work[1], multiple),
        )

    @property
    def padded_shape(self) -> tuple[int, int]:
        return (
            self.work_shape[0] + sum(self.pad_y),
            self.work_shape[1] + sum(self.pad_x),
        )

    def normalise(self, raw: np.ndarray) -> np.ndarray:
        """Raw slices ``(n, y, x)`` → normalised, rescaled float32 ``(n, h, w)`` (unpadded)."""
        x = np.asarray(raw, dtype=np.float32)
        if self.stats is not None:
            x = apply_global_mad(x, *self.stats)
        if self.factor is not None:
            x = resize_to_model(x, self.work_shape)
        if self.stats is None:
            x = standardise_slices(x)
        return x

    def prepare(self, raw: np.ndarray) -> np.ndarray:
        """Raw slices ``(n, y, x)`` → the network's float32 input ``(n, H, W)`` (padded)."""
        return np.pad(self.normalise(raw), ((0, 0), self.pad_y, self.pad_x), mode="reflect")

    def crop(self, padded: np.ndarray) -> np.ndarray:
        """``(n, H, W)`` network output → ``(n, h, w)`` without the padding."""
        (y0, _), (x0, _) = self.pad_y, self.pad_x
        h, w = self.work_shape
        return padded[:, y0 : y0 + h, x0 : x0 + w]

    def finish(self, prob: np.ndarray, *, padded: bool = True) -> np.ndarray:
        """Mean probabilities → float32 ``(n, y, x)`` in [0, 1] on the tomogram's grid."""
        p = self.crop(prob) if padded else prob
        p = np.clip(p, 0.0, 1.0)
        if self.factor is not None:
            p = _resize_out(p, self.shape_yx)
        return p.astype(np.float32, copy=False)
