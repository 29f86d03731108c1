"""The paper's picking algorithm (Last et al. 2024, "Automating particle picking"), six steps:

1. threshold the segmentation;
2. Euclidean distance transform of the binary mask;
3. watershed from the transform's local maxima: voxels flow to the nearest maximum, one group each;
4. drop groups smaller than the minimum volume ("dust");
5. weight = summed prediction value of the group's voxels;
6. of two groups closer than the minimum spacing keep the heavier (the paper's rule; the original
   code keeps the lighter one, which we do not copy), and place each particle at its group's
   centroid.

Step 6 is greedy from the heaviest group down: a group is kept unless a kept group lies within the
spacing, so a discarded group never removes a third one. Work is done per connected component
(cropped to its bounding box), which bounds memory by the largest blob instead of the tomogram and
treats the volume edge as background, so an all-foreground volume is one particle at its centre.
Plateau maxima (e.g. the flat top of a cylinder) are one marker, not one per voxel.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy import ndimage as ndi

from ais_torch.formats.encoding import block_mean, full_scale, user_probability
from ais_torch.picking.settings import (
    Picks,
    PickSettings,
    keep_inside_margin,
    size_px,
    spacing_px,
)


def pick_watershed(data: np.ndarray, voxel_size_A: float, settings: PickSettings) -> Picks:
    b = settings.binning
    full = full_scale(data)  # one pass over the volume for both the threshold and the weights
    threshold = user_probability(settings.threshold) * full
    scale = 1.0 / full
    values = block_mean(data, b) if b > 1 else data
    min_voxels = size_px(settings, voxel_size_A) / b**3
    min_spacing = spacing_px(settings, voxel_size_A) / b

    binary = np.asarray(values > threshold)
    groups = watershed_groups(binary, values, min_voxels)
    if not groups:
        return Picks.empty("aisParticleWeight", with_angles=settings.orient is not None)
    centroid = np.array([g[0] for g in groups])
    weight = np.array([g[1] for g in groups]) * scale
    n_voxels = np.array([g[2] for g in groups], dtype=np.float64)

    keep = heavier_within_spacing(centroid, weight, min_spacing)
    keep &= keep_inside_margin(centroid, binary.shape, settings.margin_px() / b)
    index = np.flatnonzero(keep)
    index = index[np.argsort(-weight[index], kind="stable")]

    angles = None
    if settings.orient is not None:
        from ais_torch.picking.orientation import blob_angles

        angles = np.array(
            [
                blob_angles(groups[i][3], settings.orient, settings.orient_sign, binary.shape)
                for i in index
            ]
        ).reshape(-1, 3)
    full_res = centroid[index] * b + (b - 1) / 2.0  # centre of the binned voxel, unbinned grid
    return Picks(
        xyz=full_res[:, ::-1],
        score=weight[index],
        score_name="aisParticleWeight",
        angles=angles,
        columns={"aisParticleSize": n_voxels[index] * (voxel_size_A * b) ** 3},
    )


def watershed_groups(
    binary: np.ndarray, values: np.ndarray, min_voxels: float
) -> list[tuple[np.ndarray, float, int, np.ndarray]]:
    """Steps 2–5: ``(centroid zyx, summed value, voxel count, voxels zyx)`` per kept group."""
    labels, _ = ndi.label(binary)
    groups = []
    for index, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None:
            continue
        mask = labels[box] == index
        if mask.sum() < min_voxels:  # a group is part of a component: a small component is dust
            continue
        origin = np.array([s.start for s in box])
        local_values = np.asarray(values[box], dtype=np.float64)
        for voxels in _split(mask):
            if len(voxels) < min_voxels:
                continue
            weight = float(local_values[tuple(voxels.T)].sum())
            voxels = voxels + origin
            groups.append((voxels.mean(axis=0), weight, len(voxels), voxels))
    return groups


def _split(mask: np.ndarray) -> list[np.ndarray]:
    """Watershed of one component from the maxima of its distance transform → voxel lists."""
    from skimage.morphology import local_maxima
    from skimage.segmentation import watershed

    padded = np.pad(mask, 1)  # the volume edge counts as background
    distance = ndi.distance_transform_edt(padded)
    peaks = local_maxima(distance, allow_borders=False) & padded
    markers, n_markers = ndi.label(peaks, structure=np.ones((3, 3, 3)))
    if n_markers <= 1:
        return [np.argwhere(mask)]
    regions = watershed(-distance, markers, mask=padded)[1:-1, 1:-1, 1:-1]
    flat = regions.ravel()
    order = np.argsort(flat, kind="stable")
    bounds = np.searchsorted(flat[order], np.arange(1, n_markers + 2))
    coords = np.column_stack(np.unravel_index(order, regions.shape))
    return [coords[lo:hi] for lo, hi in itertools.pairwise(bounds) if hi > lo]


def heavier_within_spacing(
    centroids: np.ndarray, weights: np.ndarray, spacing: float
) -> np.ndarray:
    """Step 6: keep a group unless a heavier kept group lies closer than ``spacing``.

    Ties go to the earlier group. Returns a boolean mask over the groups.
    """
    keep = np.zeros(len(centroids), dtype=bool)
    if len(centroids) == 0:
        return keep
    if spacing <= 0:
        keep[:] = True
        return keep
    from scipy.spatial import cKDTree

    tree = cKDTree(centroids)
    for i in np.argsort(-weights, kind="stable"):
        near = tree.query_ball_point(centroids[i], r=spacing)
        # strictly closer than the spacing counts as "in close proximity"
        if not any(keep[j] and np.linalg.norm(centroids[j] - centroids[i]) < spacing for j in near):
            keep[i] = True
    return keep
