"""Model competition: an absorbing model loses every voxel where an emitting model is higher.

Models flagged ``emit`` put their prediction in the competition; models flagged ``absorb`` are
zeroed wherever ANY emitting model other than themselves is strictly higher (ties keep the
absorber). A model can do both: it then survives only where no other emitter beats it. All
decisions use the predictions as they were before the competition (the original computes the
emitters' maximum first, then zeroes the absorbers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ais_torch.errors import AisInputError

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

SLAB_VOXELS = 1 << 24
"""Voxels per z slab compared at once (bounds the temporaries on large tomograms)."""


def _comparable(arrays: Mapping[str, np.ndarray]) -> bool:
    """True when all predictions share one dtype, so raw values compare as they are."""
    return len({a.dtype for a in arrays.values()}) == 1


def _scaled(a: np.ndarray, raw: bool) -> np.ndarray:
    """A slab on the common 0..1 scale when dtypes are mixed (integers are 0..255)."""
    if raw:
        return a
    if np.issubdtype(a.dtype, np.integer):
        return a.astype(np.float32) / np.float32(255)
    return a.astype(np.float32, copy=False)


def competing_pairs(emit: Collection[str], absorb: Collection[str]) -> dict[str, list[str]]:
    """``{absorber: [emitters it competes with]}``, leaving out absorbers with no rival."""
    return {a: [e for e in emit if e != a] for a in absorb if any(e != a for e in emit)}


def apply_competition(
    predictions: Mapping[str, np.ndarray],
    emit: Collection[str],
    absorb: Collection[str],
    *,
    slab_voxels: int = SLAB_VOXELS,
) -> None:
    """Zero the absorbers IN PLACE where another emitter is strictly higher.

    ``predictions`` maps titles to arrays of one shape (uint8 0..255 or float 0..1; mixed
    dtypes are compared on the 0..1 scale). Titles in ``emit``/``absorb`` must be keys.
    """
    pairs = competing_pairs(emit, absorb)
    if not pairs:
        return
    used = {t: predictions[t] for t in {*pairs, *emit}}
    shapes = {t: a.shape for t, a in used.items()}
    if len(set(shapes.values())) > 1:
        raise AisInputError(
            f"competition needs predictions of one shape; got {shapes} — the models must "
            "segment the same tomogram"
        )
    for title in pairs:
        if not used[title].flags.writeable:
            raise AisInputError(f"{title}: prediction is read-only; pass a writable copy")
    raw = _comparable(used)
    shape = next(iter(shapes.values()))
    if not shape:
        return
    per_slice = max(1, int(np.prod(shape[1:])))
    depth = max(1, slab_voxels // per_slice)
    for z0 in range(0, shape[0], depth):
        zs = slice(z0, min(z0 + depth, shape[0]))
        slab = {t: _scaled(a[zs], raw) for t, a in used.items()}
        # decide everything on the untouched values first, then zero
        losers = {}
        for absorber, rivals in pairs.items():
            best = slab[rivals[0]]
            for rival in rivals[1:]:
                best = np.maximum(best, slab[rival])
            losers[absorber] = best > slab[absorber]
        for absorber, lost in losers.items():
            used[absorber][zs][lost] = 0
