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

Steps 1–3 and 5 live in :class:`AisRecipe` so the streaming engine
(:mod:`ais_torch.segmentation.engine`) runs exactly the same arithmetic as
:func:`segment_like_ais`, the small reference loop kept for parity checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from skimage.transform import resize

from ais_torch.segmentation.normalise import apply_global_mad, global_mad_stats
from ais_torch.segmentation.preview import padding_for
from ais_torch.segmentation.tta import N_DIHEDRAL, dihedral, dihedral_inverse

RESCALE_TOLERANCE = 0.05
"""Relative pixel-size difference from which the original rescales (``>=``)."""
PER_SLICE_EPS = 1e-6
"""The original CLI's per-slice (legacy) normalisation: ``(x - mean) / (std + 1e-6)``."""
PAD_MULTIPLE = 32
DEFAULT_APIX = 10.0
"""Voxel size the original assumes when the header has none (0)."""


def rescale_factor(data_apix: float, model_apix: float) -> float | None:
    """``data_apix / model_apix`` when the original would rescale, else ``None``."""
    data_apix = float(data_apix) if data_apix and data_apix > 0 else DEFAULT_APIX
    if not model_apix or model_apix <= 0:
        return None
    factor = data_apix / float(model_apix)
    return factor if abs(factor - 1.0) >= RESCALE_TOLERANCE else None


def _normalise_per_slice(x: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=(-2, -1), keepdims=True, dtype=np.float64)
    std = x.std(axis=(-2, -1), keepdims=True, dtype=np.float64)
    return ((x - mean) / (std + PER_SLICE_EPS)).astype(np.float32, copy=False)


def _resize_slices(x: np.ndarray, shape: tuple[int, int], *, anti_aliasing: bool) -> np.ndarray:
    out = np.empty((x.shape[0], *shape), np.float32)
    for i, s in enumerate(x):
        out[i] = resize(s, shape, order=1, anti_aliasing=anti_aliasing, preserve_range=True)
    return out


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
        data: Any,
        metadata: Any,
        voxel_size_A: float,
        *,
        multiple: int = PAD_MULTIPLE,
        factor: float | str | None = "auto",
        stats: tuple[float, float] | str | None = "auto",
    ) -> AisRecipe:
        """The recipe for ``data`` (z, y, x) and a model's ``metadata``.

        ``factor="auto"`` applies the original's 5 % rule to ``voxel_size_A`` and the model's
        ``apix``; ``stats="auto"`` computes global_mad when the model records it.
        """
        n_y, n_x = (int(n) for n in data.shape[-2:])
        if isinstance(stats, str):
            normalization = str(getattr(metadata, "normalization", "per_slice") or "per_slice")
            stats = global_mad_stats(data) if normalization == "global_mad" else None
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
            x = _resize_slices(x, self.work_shape, anti_aliasing=True)
        if self.stats is None:
            x = _normalise_per_slice(x)
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
            p = _resize_slices(p, self.shape_yx, anti_aliasing=False)
        return p.astype(np.float32, copy=False)


def segment_like_ais(
    model: torch.nn.Module,
    volume: Any,
    *,
    voxel_size_A: float,
    tta: int = 1,
    batch_size: int = 4,
    z_range: slice | None = None,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Segment a ``(z, y, x)`` volume exactly as the original ``ais segment`` → uint8 ``(z, y, x)``.

    ``model.metadata`` (from :func:`ais_torch.load_model`) supplies ``normalization``, ``apix``
    and ``model_depth`` (2D models only; the engine in :mod:`ais_torch.segmentation.engine` also
    runs 2.5D/3D models). ``z_range`` segments only those slices (the others stay 0); the
    global_mad statistic is still taken over the whole volume, as in a full run. ``device``
    moves the model there; by default it runs where its parameters are. TF32 is off during the
    call on CUDA (the original computes in float32).
    """
    meta = getattr(model, "metadata", None)
    depth = int(getattr(meta, "model_depth", 1) or 1)
    if depth != 1:
        raise NotImplementedError(
            f"segment_like_ais: model_depth={depth}; only 2D models (depth 1) are supported here"
        )
    if not 1 <= int(tta) <= N_DIHEDRAL:
        raise ValueError(f"tta={tta}: must be 1..{N_DIHEDRAL}")
    if not 1 <= int(batch_size):
        raise ValueError(f"batch_size={batch_size}: must be >= 1")
    # a Volume carries its array in .data; a numpy array's own .data is its raw buffer
    data = volume if isinstance(volume, np.ndarray) else getattr(volume, "data", volume)
    if data.ndim != 3:
        raise ValueError(f"volume of shape {data.shape}: expected (z, y, x)")
    n_z = int(data.shape[0])
    z_list = list(range(n_z)[z_range] if z_range is not None else range(n_z))
    recipe = AisRecipe.for_volume(data, meta, voxel_size_A)

    if device is not None:
        dev = torch.device(device)
        model.to(dev)
    else:
        dev = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = np.zeros(data.shape, np.uint8)
    # TF32 convolutions/matmuls (PyTorch's cuDNN default) would cost ~1e-3 relative precision on
    # Ampere+ GPUs; the original ran float32, so switch them off for the duration of the call.
    tf32 = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    try:
        if dev.type == "cuda":
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        with torch.inference_mode():
            for i in range(0, len(z_list), int(batch_size)):
                idx = z_list[i : i + int(batch_size)]
                padded = recipe.prepare(data[idx])
                batch = torch.from_numpy(np.ascontiguousarray(padded[:, None])).to(dev)
                acc = torch.zeros_like(batch[:, 0])
                for k in range(int(tta)):
                    pred = model(dihedral(batch, k))[:, 0].float()
                    acc += dihedral_inverse(pred, k)
                mean = (acc / float(tta)).cpu().numpy()
                out[idx] = encode_uint8(recipe.finish(mean))
    finally:
        model.train(was_training)
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    return out
