"""Filament picking: points every ``spacing`` along the centre line of each filament.

Steps: threshold → drop components below the minimum size → 3D skeleton per component → prune
side branches shorter than the minimum length → split the skeleton at its junctions into simple
paths → keep paths at least the minimum length → smoothing spline → samples equally spaced in
arc length. Each point gets RELION angles from the local tangent (tilt, psi; rot grows by
``twist`` per point, for helical symmetry). The same steps as the original's ``-filament`` mode;
the ordering and pruning code is our own and the unbinned coordinates are voxel centres.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ais_torch.formats.encoding import block_mean, threshold_on
from ais_torch.picking.settings import (
    Picks,
    PickSettings,
    filament_length_px,
    size_px,
    spacing_px,
)


def pick_filaments(data: np.ndarray, voxel_size_A: float, settings: PickSettings) -> Picks:
    b = settings.binning
    values = block_mean(data, b)
    binary = values > threshold_on(data, settings.threshold)
    min_voxels = size_px(settings, voxel_size_A) / b**3
    step = max(spacing_px(settings, voxel_size_A) / b, 1e-3)
    min_length = filament_length_px(settings, voxel_size_A) / b
    margin = settings.margin_px() / b

    labels, _ = ndi.label(binary)
    points, angles, fil_id, lengths = [], [], [], []
    n_filaments = 0
    for index, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None:
            continue
        mask = labels[box] == index
        if mask.sum() < min_voxels:
            continue
        skeleton = centre_line_voxels(mask) + [s.start for s in box]
        for path in skeleton_paths(skeleton, min_length):
            sampled = sample_path(path, step, settings.twist)
            if sampled is None:
                continue
            zyx, euler, length = sampled
            points.append(zyx)
            angles.append(euler)
            fil_id.append(np.full(len(zyx), n_filaments))
            lengths.append(np.full(len(zyx), length * voxel_size_A * b))
            n_filaments += 1
    if not points:
        empty = Picks.empty("aisFilamentLength", with_angles=True)
        empty.columns["aisFilamentID"] = np.zeros(0, dtype=np.int64)
        return empty
    zyx = np.concatenate(points)
    shape = np.asarray(binary.shape, dtype=np.float64)
    inside = np.all((zyx > margin) & (zyx < shape - margin), axis=1) if margin > 0 else None
    picks = Picks(
        xyz=(zyx * b + (b - 1) / 2.0)[:, ::-1],
        score=np.concatenate(lengths),
        score_name="aisFilamentLength",
        angles=np.concatenate(angles),
        columns={"aisFilamentID": np.concatenate(fil_id)},
    )
    return picks if inside is None else picks.take(inside)


def centre_line_voxels(mask: np.ndarray) -> np.ndarray:
    """``(n, 3)`` float z/y/x skeleton voxels of one component.

    skimage's 3D thinning erases (parts of) tubes whose cross-section is an even number of voxels
    wide and symmetric (e.g. 4 × 4). So we also thin the mask grown by one voxel along +z, +y and
    +x (odd width), shifted back by half a voxel, and keep whichever skeleton is longer.
    """
    from skimage.morphology import skeletonize

    padded = np.pad(mask, 2)
    skeleton = np.argwhere(skeletonize(padded)).astype(np.float64) - 2
    grown = padded.copy()
    grown[1:] |= grown[:-1]
    grown[:, 1:] |= grown[:, :-1]
    grown[:, :, 1:] |= grown[:, :, :-1]
    alternative = np.argwhere(skeletonize(grown)).astype(np.float64) - 2.5
    return alternative if len(alternative) > len(skeleton) + 1 else skeleton


def skeleton_paths(voxels: np.ndarray, min_length: float) -> list[np.ndarray]:
    """Ordered ``(n, 3)`` centre lines of a 26-connected skeleton, each ≥ ``min_length`` voxels.

    Repeatedly takes the longest shortest-path through each skeleton piece (its main filament),
    then removes it with its neighbours so a branch that long or longer comes out as a filament
    of its own. Shorter spurs never reach the length and are dropped. Shortest paths also step
    over the small voxel triangles skeletons have at corners, which naive walkers mistake for
    junctions.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components, dijkstra
    from scipy.spatial import cKDTree

    n = len(voxels)
    if n < 2:
        return []
    pairs = cKDTree(voxels).query_pairs(r=np.sqrt(3) + 1e-6, output_type="ndarray")
    if len(pairs) == 0:
        return []
    weights = np.linalg.norm(voxels[pairs[:, 0]] - voxels[pairs[:, 1]], axis=1)
    graph = coo_matrix((weights, (pairs[:, 0], pairs[:, 1])), shape=(n, n)).tocsr()
    graph = graph + graph.T
    alive = np.ones(n, dtype=bool)
    paths = []
    while alive.sum() >= 2:
        nodes_alive = np.flatnonzero(alive)
        sub = graph[nodes_alive][:, nodes_alive]
        n_pieces, piece = connected_components(sub, directed=False)
        for c in range(n_pieces):
            members = np.flatnonzero(piece == c)
            g = sub[members][:, members]
            far = np.nan_to_num(dijkstra(g, directed=False, indices=0), posinf=-1.0)
            start = int(np.argmax(far))
            dist, pred = dijkstra(g, directed=False, indices=start, return_predecessors=True)
            dist = np.nan_to_num(dist, posinf=-1.0)
            end = int(np.argmax(dist))
            if len(members) < 2 or dist[end] < max(min_length, 1e-9):
                alive[nodes_alive[members]] = False
                continue
            route = [end]
            while route[-1] != start:
                route.append(int(pred[route[-1]]))
            paths.append(voxels[nodes_alive[members[route[::-1]]]].astype(np.float64))
            used = set(route)
            used.update(int(j) for i in route for j in g[i].indices)
            alive[nodes_alive[members[sorted(used)]]] = False
    return paths


def _length(path: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(path, axis=0), axis=1).sum()) if len(path) > 1 else 0.0


def sample_path(path: np.ndarray, step: float, twist: float):
    """Spline through ``path`` (z, y, x), sampled every ``step`` voxels of arc length.

    Returns ``(points zyx, RELION angles, length in voxels)`` or None for a degenerate path.
    """
    from scipy.interpolate import splev, splprep

    from ais_torch.picking.orientation import direction_to_euler

    keep = np.r_[True, np.any(np.diff(path, axis=0) != 0, axis=1)]
    path = path[keep]
    if len(path) < 2:
        return None
    k = min(3, len(path) - 1)
    tck, _ = splprep(path.T, s=0.5 * len(path), k=k)
    u_dense = np.linspace(0.0, 1.0, max(50, 10 * len(path)))
    dense = np.array(splev(u_dense, tck)).T
    arc = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(dense, axis=0), axis=1))]
    length = float(arc[-1])
    if length <= 0:
        return None
    u = np.interp(np.arange(0.0, length, step), arc, u_dense)
    zyx = np.array(splev(u, tck)).T
    tangent_zyx = np.array(splev(u, tck, der=1)).T
    euler = direction_to_euler(tangent_zyx[:, ::-1])
    euler[:, 0] = (np.arange(len(u)) * twist) % 360.0
    return zyx, euler, length
