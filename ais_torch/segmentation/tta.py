"""Test-time augmentation: the 8 right-angle rotations/flips of a slice, and their inverses.

Order as the original Ais's TTA: k = 0..7 is rot90 by ``k % 4`` in the (y, x) plane, then a flip
of x for k >= 4. Exact (no interpolation), so training uses them too for the first copies of
each positive box (:mod:`ais_torch.training.augment`). Works on numpy arrays and torch tensors,
on the last two axes.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

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
