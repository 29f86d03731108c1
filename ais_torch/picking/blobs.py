"""The original 1.2.40 ``ais pick`` blob modes, reproduced so our picks match its files.

Default mode: threshold → drop connected components smaller than the minimum size → Euclidean
distance transform → its peaks (``peak_local_max`` with ``min_distance = max(3, spacing px)``,
which also keeps peaks that far from the borders) → margin → sorted by depth (the peak's distance
value, the score). ``centroid=True``: one particle per component at its centroid, score = volume
in Å³, optional orientation from the blob's shape. Quirks kept on purpose for parity: spacing and
size are truncated to whole voxels the way the original does, and binned coordinates are scaled
back by ``× binning`` without the half-voxel shift (the watershed method does it right).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ais_torch.formats.encoding import block_mean, threshold_on
from ais_torch.picking.settings import (
    Picks,
    PickSettings,
    keep_inside_margin,
)


def pick_blobs(data: np.ndarray, voxel_size_A: float, settings: PickSettings) -> Picks:
    b = settings.binning
    threshold = threshold_on(data, settings.threshold)
    # float32 at bin 1 too: the original compared float32 values with the threshold
    values = block_mean(data, b) if b > 1 else np.asarray(data, dtype=np.float32)
    pixel_nm = voxel_size_A / 10.0 * b
    # Same arithmetic as the original (nm, then divided by the binned pixel) so int() agrees.
    spacing_nm = (
        settings.spacing_px * voxel_size_A / 10.0
        if settings.spacing_px is not None
        else settings.spacing_A / 10.0
    )
    size_nm3 = (
        settings.size_px * (voxel_size_A / 10.0) ** 3
        if settings.size_px is not None
        else settings.size_A3 / 1000.0
    )
    min_distance = max(3, int(spacing_nm / pixel_nm))
    min_voxels = size_nm3 / pixel_nm**3
    margin = settings.margin_px() // b

    binary = values > threshold
    labels, n = ndi.label(binary)
    counts = np.bincount(labels.ravel(), minlength=n + 1)
    small = counts < min_voxels
    small[0] = True  # background
    binary &= ~small[labels]

    if settings.centroid:
        coords, score, angles = _centroids(labels, small, pixel_nm, settings)
    else:
        coords, score, angles = _distance_peaks(binary, min_distance)

    inside = keep_inside_margin(coords, binary.shape, margin)
    coords, score = coords[inside], score[inside]
    angles = None if angles is None else angles[inside]
    order = np.argsort(-score, kind="stable")
    picks = Picks(
        xyz=coords[order][:, ::-1] * b,
        score=score[order],
        angles=None if angles is None else angles[order],
    )
    return picks


def _distance_peaks(binary: np.ndarray, min_distance: int):
    from skimage.feature import peak_local_max

    if not binary.any():
        return np.zeros((0, 3)), np.zeros(0), None
    distance = ndi.distance_transform_edt(binary)
    peaks = peak_local_max(distance, min_distance=min_distance)
    score = distance[tuple(peaks.T)] if len(peaks) else np.zeros(0)
    return peaks.astype(np.float64), score, None


def _centroids(labels: np.ndarray, small: np.ndarray, pixel_nm: float, settings: PickSettings):
    from ais_torch.picking.orientation import blob_angles

    coords, score, angles = [], [], []
    for index, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None or small[index]:
            continue
        voxels = np.argwhere(labels[box] == index) + [s.start for s in box]
        coords.append(voxels.mean(axis=0))
        score.append(len(voxels) * (10.0 * pixel_nm) ** 3)
        if settings.orient is not None:
            angles.append(blob_angles(voxels, settings.orient, settings.orient_sign, labels.shape))
    coords_arr = np.asarray(coords, dtype=np.float64).reshape(-1, 3)
    angles_arr = np.asarray(angles, dtype=np.float64).reshape(-1, 3) if settings.orient else None
    return coords_arr, np.asarray(score, dtype=np.float64), angles_arr
