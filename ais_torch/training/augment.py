"""Geometric augmentation of training boxes that keeps image and label aligned.

* :func:`ais_torch.segmentation.tta.dihedral` — the 8 right-angle rotations/flips of test-time
  augmentation, exact, used first for the copies of each positive box (:mod:`.sampling`);
* :func:`rotate` — an arbitrary angle, for the copies beyond 8. Image: cubic, corners filled with
  the box mean (like the original). Labels: nearest, corners filled with **2 = ignore** — the
  original fills them with 0, which teaches the network that "no data" means "not the feature";
  we let the masked loss skip pixels that carry no information instead.

Both act on the last two axes, so a ``(D, B, B)`` image and its ``(B, B)`` label transform
together.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ais_torch.formats.boxset import IGNORE


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
