"""Inputs of 2.5D and 3D models: the ``model_depth`` slices around each output slice.

The original (HEAD) feeds a 2.5D model the slab ``z - d//2 .. z + d//2`` as input channels
(``(H, W, D)`` channels-last → our ``(B, D, H, W)``) and a 3D model the same slab as a volume
(``(H, W, D, 1)`` → our ``(B, 1, D, H, W)``); indices beyond the volume are clamped to the
first/last slice. Both predict the centre slice. The engine reads each slab with a halo of
``d//2`` slices so that streaming gives the same input as a whole-volume run.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def halo(depth: int) -> int:
    """Slices needed on each side of an output slice."""
    return max(0, int(depth) // 2)


def slab_bounds(zs: slice, depth: int, n_z: int) -> tuple[int, int]:
    """``[lo, hi)`` of the slices to read for outputs ``zs`` (clamped to the volume)."""
    h = halo(depth)
    return max(0, zs.start - h), min(n_z, zs.stop + h)


def channel_index(z_out: Sequence[int], depth: int, n_z: int, lo: int) -> np.ndarray:
    """``(len(z_out), depth)`` positions in a slab starting at ``lo``, clamped to the volume."""
    h = halo(depth)
    offsets = np.arange(-h, h + 1)
    z = np.clip(np.asarray(z_out)[:, None] + offsets[None, :], 0, n_z - 1)
    return z - lo


def gather(
    prepared: torch.Tensor, z_out: Sequence[int], depth: int, n_z: int, lo: int, is_3d: bool
) -> torch.Tensor:
    """Model input for the outputs ``z_out`` from prepared slices ``(m, *rest)`` starting at ``lo``.

    ``rest`` is ``(H, W)`` for whole slices or ``(T, box, box)`` for tiles; tiles come out
    flattened into the batch (``B·T``), slice-major. 2D/2.5D → ``(B, D, h, w)``, 3D →
    ``(B, 1, D, h, w)``.
    """
    if depth == 1 and not is_3d:
        x = prepared[int(z_out[0]) - lo : int(z_out[-1]) - lo + 1].unsqueeze(1)  # (B, 1, ...)
    else:
        idx = torch.from_numpy(channel_index(z_out, depth, n_z, lo))
        x = prepared[idx.reshape(-1)].reshape(len(z_out), depth, *prepared.shape[1:])
    if x.ndim == 5:  # tiles: (B, D, T, b, b) → (B·T, D, b, b)
        x = x.transpose(1, 2).reshape(-1, depth, *x.shape[-2:])
    if is_3d:
        x = x.unsqueeze(1)
    return x.contiguous()
