"""Training boxes cut from annotated tomogram slices.

A user brings a tomogram and a label volume of the same shape, drawn on a few slices (a napari
Labels layer, or an IMOD/Amira mask saved as .mrc):

* ``0`` = not the feature (negative), ``1`` = the feature (positive), ``2`` = ignore (unsure);
* a z-slice counts as annotated only if it holds at least one non-zero label, so un-annotated
  slices (all 0) are never taken as negatives.

Every annotated slice is tiled with square boxes; a box with any ``1`` is a positive, a box with
no ``1`` but some ``0`` a negative, a box of only ``2`` is dropped. Where a box hangs over the
slice edge the image is reflect-padded and the label there is ``2`` (ignore), as the original
Ais 1.2 does, so edge boxes teach nothing about pixels that are not in the tomogram.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ais_torch.errors import AisInputError, ConfigError
from ais_torch.formats.boxset import IGNORE, NEGATIVE, POSITIVE, BoxSet
from ais_torch.formats.mrc import Volume, iter_slabs
from ais_torch.segmentation.normalise import NORMALIZATIONS, apply_global_mad, global_mad_stats
from ais_torch.segmentation.preprocess import rescale_factor, resize_to_model

POOL_APIX_RTOL = 0.01
"""Sets whose pixel sizes differ by more than this cannot be pooled."""
_LABEL_SCAN_SLICES = 16


def concat(sets: Sequence[BoxSet]) -> BoxSet:
    """Pool box sets (several tomograms or .scnt files) into one.

    Box size and depth must agree exactly and pixel sizes within 1 %, since a network learns at
    one scale. Different feature names are joined with ``+``; mixed normalisations are recorded
    as ``"mixed"`` (every sample is then standardised after augmentation, and the model
    normalises tomograms slice by slice).
    """
    sets = list(sets)
    if not sets:
        raise AisInputError("no training boxes to combine; give at least one training set")
    first = sets[0]
    for s in sets[1:]:
        if (s.box_size, s.depth) != (first.box_size, first.depth):
            raise AisInputError(
                f"{_origin(s)}: boxes are {_shape(s)} but {_origin(first)} has {_shape(first)}; "
                "training sets can only be pooled with the same box size and depth "
                "(re-extract them with one box_size)"
            )
        if abs(s.apix / first.apix - 1.0) > POOL_APIX_RTOL:
            raise AisInputError(
                f"{_origin(s)}: boxes are at {s.apix:g} Å/px but {_origin(first)} at "
                f"{first.apix:g} Å/px; extract all training data at one pixel size (apix=...)"
            )
    features = list(dict.fromkeys(s.feature for s in sets))
    norms = {s.normalization for s in sets}
    return BoxSet(
        images=np.concatenate([s.images for s in sets]),
        labels=np.concatenate([s.labels for s in sets]),
        apix=first.apix,
        feature="+".join(features),
        sources=[dict(src) for s in sets for src in s.sources],
        normalization=norms.pop() if len(norms) == 1 else "mixed",
    )


def _shape(s: BoxSet) -> str:
    return f"{s.box_size}x{s.box_size}x{s.depth}"


def _origin(s: BoxSet) -> str:
    src = s.sources[0] if s.sources else {}
    return str(src.get("path") or src.get("tomogram") or f"'{s.feature}' boxes")


def extract_boxes(
    volume: Volume,
    labels: np.ndarray | Volume,
    *,
    feature: str,
    box_size: int = 64,
    apix: float | None = None,
    stride: int | None = None,
    depth: int = 1,
    normalization: str = "global_mad",
    slab: bool = False,
) -> BoxSet:
    """Cut training boxes from the annotated slices of one tomogram.

    Parameters
    ----------
    volume
        The tomogram (memory-mapped; only annotated slices, their depth neighbours and the
        ≤ 32 normalisation slices are read).
    labels
        Label volume of the same shape: 0 = negative, 1 = positive, 2 = ignore.
    feature
        Name recorded with the boxes (e.g. ``"Membrane"``).
    box_size
        Box edge in pixels at the target pixel size.
    apix
        Target pixel size (Å); ``None`` keeps the tomogram's. Slices are resampled in XY
        (image: linear, anti-aliased; labels: nearest) when it differs by more than 0.1 %.
    stride
        Step between boxes in target pixels; default ``box_size // 2``.
    depth
        Odd number of slices per box (centred on the annotated slice, clamped at the ends).
    slab
        Boxes for a 3D slab network: ``depth`` may be even (the original stores a 16-slice
        net's boxes 32 deep); the annotated slice is at index ``depth // 2`` either way.
    normalization
        ``"global_mad"`` (the original 1.2's whole-tomogram statistic) or ``"none"``.
    """
    tomo_name = str(volume.path) if volume.path is not None else "tomogram"
    lab_data = labels.data if isinstance(labels, Volume) else np.asarray(labels)
    lab_name = str(labels.path) if isinstance(labels, Volume) and labels.path else "label volume"
    box_size, stride, depth = _check_settings(box_size, stride, depth, normalization, slab)
    data = volume.data
    if tuple(lab_data.shape) != tuple(data.shape):
        raise AisInputError(
            f"{lab_name}: label volume has shape {tuple(lab_data.shape)} but tomogram "
            f"{tomo_name} has {tuple(data.shape)} (z, y, x); draw the labels on this tomogram"
        )
    n_z, n_y, n_x = (int(n) for n in data.shape)
    data_apix = float(volume.voxel_size_A)
    target_apix = data_apix if apix is None else float(apix)
    if not math.isfinite(target_apix) or target_apix <= 0:
        raise ConfigError(f"apix={apix}: the target pixel size must be > 0 Å")
    factor = rescale_factor(data_apix, target_apix)  # the segmentation's rule (>= 5 %)
    rescale = factor is not None
    zoom = data_apix / target_apix
    out_h, out_w = (max(1, round(n_y * zoom)), max(1, round(n_x * zoom))) if rescale else (n_y, n_x)
    if box_size > out_h and box_size > out_w:
        raise AisInputError(
            f"{tomo_name}: box size {box_size} px is larger than the tomogram slice "
            f"({out_h}x{out_w} px at {target_apix:g} Å/px); choose a smaller box_size "
            f"(at most {max(out_h, out_w)})"
        )
    annotated = _annotated_slices(lab_data, lab_name)
    if annotated.size == 0:
        raise AisInputError(
            f"{lab_name}: no annotated slice (every label is 0); paint the feature as 1 (and "
            "background as 0, unsure as 2) on at least one slice, or check the label file"
        )
    stats = global_mad_stats(volume) if normalization == "global_mad" else None
    starts_y, pad_y = _tile(out_h, box_size, stride)
    starts_x, pad_x = _tile(out_w, box_size, stride)
    first = -(depth // 2)  # the annotated slice sits at index depth // 2
    stem = Path(volume.path).stem if volume.path is not None else "tomogram"
    images: list[np.ndarray] = []
    box_labels: list[np.ndarray] = []
    sources: list[dict[str, Any]] = []
    for z in (int(z) for z in annotated):
        zs = np.clip(np.arange(z + first, z + first + depth), 0, n_z - 1)
        img = np.stack([_read_slice(data, int(zz), tomo_name) for zz in zs])
        lab = np.asarray(lab_data[z]).astype(np.uint8)
        if stats is not None:
            img = apply_global_mad(img, *stats)
        if rescale:
            img, lab = _resample(img, lab, (out_h, out_w), zoom)
        img = np.pad(img, ((0, 0), pad_y, pad_x), mode="reflect")
        lab = np.pad(lab, (pad_y, pad_x), mode="constant", constant_values=IGNORE)
        for y0 in starts_y:
            for x0 in starts_x:
                py, px = y0 + pad_y[0], x0 + pad_x[0]
                lbox = lab[py : py + box_size, px : px + box_size]
                kind = box_kind(lbox)
                if kind is None:
                    continue
                positive = kind == "positive"
                images.append(img[:, py : py + box_size, px : px + box_size])
                box_labels.append(lbox)
                sources.append(
                    {
                        "tomogram": stem,
                        "path": str(volume.path) if volume.path is not None else "",
                        "z": z,
                        "y": _to_voxel(y0, box_size, zoom, rescale),
                        "x": _to_voxel(x0, box_size, zoom, rescale),
                        "feature": feature,
                        "negative": not positive,
                        "box_size": box_size,
                    }
                )
    b = box_size
    return BoxSet(
        images=np.stack(images) if images else np.zeros((0, depth, b, b), np.float32),
        labels=np.stack(box_labels) if box_labels else np.zeros((0, b, b), np.uint8),
        apix=target_apix,
        feature=feature,
        sources=sources,
        normalization=normalization,
    )


def box_kind(lbox: np.ndarray) -> str | None:
    """``"positive"`` (any 1), ``"negative"`` (no 1, some 0) or ``None`` (only 2: dropped)."""
    if (lbox == POSITIVE).any():
        return "positive"
    return "negative" if (lbox == NEGATIVE).any() else None


def count_boxes(
    labels: np.ndarray,
    *,
    voxel_size_A: float,
    box_size: int = 64,
    apix: float | None = None,
    stride: int | None = None,
    name: str = "label volume",
) -> dict[int, tuple[int, int]]:
    """``{z: (positive, negative)}`` boxes that :func:`extract_boxes` cuts from ``labels``.

    Reads only the labels (no tomogram, no normalisation), so an annotation tool can show the
    counts live while the user paints; the same tiling, resampling and box rules apply.
    """
    box_size, stride, _ = _check_settings(box_size, stride, 1, "none")
    n_y, n_x = (int(n) for n in labels.shape[1:])
    target_apix = float(voxel_size_A) if apix is None else float(apix)
    if not math.isfinite(target_apix) or target_apix <= 0:
        raise ConfigError(f"apix={apix}: the target pixel size must be > 0 Å")
    rescale = rescale_factor(float(voxel_size_A), target_apix) is not None
    zoom = float(voxel_size_A) / target_apix
    out_h, out_w = (max(1, round(n_y * zoom)), max(1, round(n_x * zoom))) if rescale else (n_y, n_x)
    starts_y, pad_y = _tile(out_h, box_size, stride)
    starts_x, pad_x = _tile(out_w, box_size, stride)
    counts: dict[int, tuple[int, int]] = {}
    for z in (int(z) for z in _annotated_slices(labels, name)):
        lab = np.asarray(labels[z]).astype(np.uint8)
        if rescale:
            lab = _resample_labels(lab, (out_h, out_w))
        lab = np.pad(lab, (pad_y, pad_x), mode="constant", constant_values=IGNORE)
        kinds = [
            box_kind(lab[py : py + box_size, px : px + box_size])
            for py in (y0 + pad_y[0] for y0 in starts_y)
            for px in (x0 + pad_x[0] for x0 in starts_x)
        ]
        counts[z] = (kinds.count("positive"), kinds.count("negative"))
    return counts


def _check_settings(
    box_size: int, stride: int | None, depth: int, normalization: str, slab: bool = False
) -> tuple[int, int, int]:
    if int(box_size) != box_size or box_size < 2:
        raise ConfigError(f"box_size={box_size}: must be a whole number of pixels ≥ 2 (e.g. 64)")
    box_size = int(box_size)
    stride = box_size // 2 if stride is None else stride
    if int(stride) != stride or stride < 1:
        raise ConfigError(f"stride={stride}: must be a whole number of pixels ≥ 1")
    if int(depth) != depth or depth < 1 or (depth % 2 == 0 and not slab):
        raise ConfigError(f"depth={depth}: box depth must be an odd number of slices (1, 3, 5...)")
    if normalization not in NORMALIZATIONS:
        raise ConfigError(f"normalization={normalization!r}: choose one of {NORMALIZATIONS}")
    return box_size, int(stride), int(depth)


def _annotated_slices(lab_data: Any, name: str) -> np.ndarray:
    """Validate label values (streamed in slabs) and return the z of slices with any label."""
    dtype = np.dtype(lab_data.dtype)
    is_float = np.issubdtype(dtype, np.floating)
    if not (is_float or np.issubdtype(dtype, np.integer) or dtype == np.bool_):
        raise AisInputError(
            f"{name}: labels of type {dtype} are not supported; save them as integers "
            "0 (negative), 1 (feature), 2 (ignore)"
        )
    found: list[np.ndarray] = []
    for zs in iter_slabs(int(lab_data.shape[0]), _LABEL_SCAN_SLICES):
        slab = np.asarray(lab_data[zs])
        if is_float:
            bad = ~np.isfinite(slab) | (slab != np.round(slab))
            if bad.any():
                z, y, x = (int(i) for i in np.argwhere(bad)[0])
                raise AisInputError(
                    f"{name}: label {slab[z, y, x]} at z={z + zs.start}, y={y}, x={x} is not a "
                    "whole number; labels must be 0 (negative), 1 (feature) or 2 (ignore)"
                )
        if dtype != np.bool_:
            bad = (slab < 0) | (slab > IGNORE)
            if bad.any():
                z, y, x = (int(i) for i in np.argwhere(bad)[0])
                raise AisInputError(
                    f"{name}: label value {slab[z, y, x]} at z={z + zs.start}, y={y}, x={x}; "
                    "labels must be 0 (negative), 1 (feature) or 2 (ignore) — e.g. turn a "
                    "0/255 mask into (mask > 0)"
                )
        found.append(zs.start + np.flatnonzero(slab.reshape(slab.shape[0], -1).any(axis=1)))
    return np.concatenate(found) if found else np.zeros(0, int)


def _read_slice(data: Any, z: int, name: str) -> np.ndarray:
    s = np.asarray(data[z], dtype=np.float32)
    if not np.isfinite(s).all():
        raise AisInputError(
            f"{name}: slice z={z} contains NaN/Inf; fix the reconstruction or replace them "
            "(e.g. numpy.nan_to_num)"
        )
    return s


def _tile(n: int, box: int, stride: int) -> tuple[list[int], tuple[int, int]]:
    """Box starts covering ``range(n)`` and the (before, after) padding they need.

    The grid is centred so that any overhang is split between both edges.
    """
    count = 1 if n <= box else math.ceil((n - box) / stride) + 1
    over = (count - 1) * stride + box - n
    before = over // 2
    return [i * stride - before for i in range(count)], (before, over - before)


def _resample(
    img: np.ndarray, lab: np.ndarray, shape: tuple[int, int], zoom: float
) -> tuple[np.ndarray, np.ndarray]:
    """XY resampling: the image exactly as segmentation resamples a tomogram
    (:func:`~ais_torch.segmentation.preprocess.resize_to_model`), labels nearest on the same
    pixel-centre grid, so image and labels stay aligned.
    """
    img = resize_to_model(np.asarray(img, np.float32), shape)
    return img, _resample_labels(lab, shape)


def _resample_labels(lab: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Labels nearest-neighbour on the image's pixel-centre grid."""
    from skimage.transform import resize

    out = resize(lab, shape, order=0, mode="edge", anti_aliasing=False, preserve_range=True)
    return out.astype(np.uint8)


def _to_voxel(start: int, box: int, zoom: float, rescale: bool) -> int:
    """Box centre (target pixels) → tomogram voxel index, as the original records it."""
    if not rescale:
        return start + box // 2
    return math.floor((start + box / 2) / zoom)
