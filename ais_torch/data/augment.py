"""Geometric augmentation of training boxes that keeps image and label aligned.

* :func:`dihedral` — the 8 right-angle rotations/flips, in the original Ais's test-time
  augmentation order (k = 0..7: rot90 by ``k % 4`` in the (y, x) plane, then flip x for k ≥ 4).
  Exact (no interpolation), so they are used first for the copies of each positive box.
* :func:`rotate` — an arbitrary angle, for the copies beyond 8. Image: cubic, corners filled with
  the box mean (like the original). Labels: nearest, corners filled with **2 = ignore** — the
  original fills them with 0, which teaches the network that "no data" means "not the feature";
  we let the masked loss skip pixels that carry no information instead.

Both act on the last two axes, so a ``(D, B, B)`` image and its ``(B, B)`` label transform
together. :func:`dihedral` also accepts torch tensors (for test-time augmentation).
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
from scipy import ndimage

from ais_torch.data.boxes import IGNORE

N_DIHEDRAL = 8
T = TypeVar("T")


def _is_torch(x: object) -> bool:
    return type(x).__module__.startswith("torch")


def dihedral(x: T, k: int) -> T:
    """Transform ``k`` (0..7) of the dihedral group on the last two axes (y, x)."""
    if not 0 <= int(k) < N_DIHEDRAL:
        raise ValueError(f"dihedral transform k={k}: must be 0..7")
    k = int(k)
    if _is_torch(x):
        out = x.rot90(k % 4, dims=(-2, -1))  # type: ignore[attr-defined]
        return out.flip(-1) if k >= 4 else out
    out = np.rot90(np.asarray(x), k % 4, axes=(-2, -1))
    if k >= 4:
        out = np.flip(out, axis=-1)
    return np.ascontiguousarray(out)  # type: ignore[return-value]


def dihedral_inverse(x: T, k: int) -> T:
    """Undo :func:`dihedral` ``k`` (used to map test-time-augmented predictions back)."""
    if not 0 <= int(k) < N_DIHEDRAL:
        raise ValueError(f"dihedral transform k={k}: must be 0..7")
    k = int(k)
    if _is_torch(x):
        out = x.flip(-1) if k >= 4 else x  # type: ignore[attr-defined]
        return out.rot90(-(k % 4), dims=(-2, -1))
    out = np.asarray(x)
    if k >= 4:
        out = np.flip(out, axis=-1)
    return np.ascontiguousarray(np.rot90(out, -(k % 4), axes=(-2, -1)))  # type: ignore[return-value]


def rotate(image: np.ndarray, label: np.ndarray, angle_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotate an image ``(..., B, B)`` and its label ``(B, B)`` by ``angle_deg`` in the XY plane.

    The box keeps its size (corners are cut off, empty corners filled): image cubic with the
    box mean, label nearest with 2 = ignore.
    """
    image = np.asarray(image, dtype=np.float32)
    label = np.asarray(label)
    rot_image = ndimage.rotate(
        image,
        float(angle_deg),
        axes=(-1, -2),
        reshape=False,
        order=3,
        mode="constant",
        cval=float(image.mean(dtype=np.float64)),
    )
    rot_label = ndimage.rotate(
        label.astype(np.uint8),
        float(angle_deg),
        axes=(-1, -2),
        reshape=False,
        order=0,
        mode="constant",
        cval=IGNORE,
    )
    return rot_image.astype(np.float32, copy=False), rot_label.astype(np.uint8, copy=False)
