"""Particle orientation from a blob's shape, and RELION Euler angles for a direction.

A disc-like blob (membrane patch, platform) is described by its normal = the principal axis of
least spread (``orient="normal"``); a rod by its long axis (``orient="long-axis"``). A direction
fixes only tilt and psi; rot stays 0. Blobs too round for the chosen axis get (0, 0, 0), the
same "undefined" value the original writes.

Angles follow RELION's ZYZ convention: for rot = 0 the matrix built from (rot, tilt, psi) maps
the reference z axis onto ``v = (−cos psi · sin tilt, sin psi · sin tilt, cos tilt)``, hence
``tilt = acos(v_z)`` and ``psi = atan2(v_y, −v_x)`` (tilt 90° = in the XY plane, as for filaments).
"""

from __future__ import annotations

import numpy as np

# Eigenvalue ratio above which the axis is ambiguous (second/least or middle/largest spread).
ISOTROPIC_RATIO = 0.7


def direction_to_euler(v_xyz: np.ndarray) -> np.ndarray:
    """``(N, 3)`` x/y/z directions → ``(N, 3)`` RELION rot, tilt, psi in degrees (rot = 0)."""
    v = np.atleast_2d(np.asarray(v_xyz, dtype=np.float64))
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    v = v / np.where(norm > 0, norm, 1.0)
    tilt = np.degrees(np.arccos(np.clip(v[:, 2], -1.0, 1.0)))
    psi = np.degrees(np.arctan2(v[:, 1], -v[:, 0]))
    return np.column_stack([np.zeros(len(v)), tilt, psi])


def euler_to_matrix(angles: np.ndarray) -> np.ndarray:
    """RELION rot/tilt/psi (degrees) → ``(N, 3, 3)`` rotations taking the reference z axis onto the
    particle's axis (RELION's own A matrix), used as copick's ``transformation_``."""
    from scipy.spatial.transform import Rotation

    angles = np.atleast_2d(np.asarray(angles, dtype=np.float64))
    if len(angles) == 0:
        return np.zeros((0, 3, 3))
    # scipy's intrinsic "ZYZ" gives Rz(rot)·Ry(tilt)·Rz(psi); RELION's A is its transpose.
    return Rotation.from_euler("ZYZ", angles, degrees=True).as_matrix().transpose(0, 2, 1)


def blob_axis(voxels_zyx: np.ndarray, mode: str) -> np.ndarray | None:
    """The blob's normal or long axis as an x/y/z unit vector; None when too isotropic."""
    centred = voxels_zyx - voxels_zyx.mean(axis=0)
    eigvals, eigvecs = np.linalg.eigh(centred.T @ centred / len(centred))  # ascending
    if mode == "normal":
        vec, ratio = eigvecs[:, 0], eigvals[0] / max(eigvals[1], 1e-9)
    else:
        vec, ratio = eigvecs[:, 2], eigvals[1] / max(eigvals[2], 1e-9)
    if ratio > ISOTROPIC_RATIO:
        return None
    return vec[::-1].copy()


def blob_angles(
    voxels_zyx: np.ndarray, mode: str, sign: str, shape_zyx: tuple[int, ...]
) -> tuple[float, float, float]:
    """RELION (rot, tilt, psi) of one blob; the axis sign is fixed by ``sign``.

    ``z``: the axis points to +z; ``center``/``out``: towards/away from the volume centre.
    """
    v = blob_axis(voxels_zyx, mode)
    if v is None:
        return 0.0, 0.0, 0.0
    if sign == "z":
        if v[2] < 0:
            v = -v
    else:
        to_centre = (np.asarray(shape_zyx, dtype=np.float64) / 2.0 - voxels_zyx.mean(axis=0))[::-1]
        if (np.dot(v, to_centre) > 0) != (sign == "center"):
            v = -v
    rot, tilt, psi = direction_to_euler(v)[0]
    return float(rot), float(tilt), float(psi)
