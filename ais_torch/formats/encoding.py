"""How a segmentation volume's values are read: what threshold 0.5 (or 128) means on it, and
how it is binned — picking, meshes, evaluation and the viewer all follow these rules.

Why: segmentations reach these steps in several encodings — ``ais segment``/``ais_torch.segment``
write grey levels 0–255 (uint8, stored as MRC mode 6 uint16), ``dtype=float32`` writes
probabilities 0–1, the original's int8 outputs hold 0–127, label files are 0/1 masks, and
some tools write grey levels as floats. Users give a threshold either as a probability (0.5) or
as the grey level they see in a viewer (128); every command must read both the same way.

* A user value ≤ 1 is a probability; a value in (1, 255] is a grey level (÷ 255).
* A volume's full scale (what probability 1 reads as): 1 for bool, 0/1 masks and float
  probabilities; 127.5 for int8 holding more than 0/1 (the original halves grey levels for its
  int8 outputs); 255 for other integers and for float volumes with values above 1 (grey levels
  stored as floats).
* Binning is one block mean (:func:`block_mean`), so a level lands on the same voxels whether
  picking, a mesh or the viewer bins the volume.
"""

from __future__ import annotations

import math

import numpy as np

from ais_torch.errors import ConfigError

GREY_MAX = 255.0
INT8_FULL = 127.5  # the original halves grey levels for its int8 outputs (0..127)


def user_probability(value: float, key: str = "threshold") -> float:
    """A probability (≤ 1) or grey level (1–255) as given on the command line → probability."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}={value!r} is not a number") from None
    if not math.isfinite(v) or v < 0 or v > GREY_MAX:
        raise ConfigError(
            f"{key}={value} is outside 0..1 (a probability) and 0..255 (a grey level as "
            f"`ais segment` writes); e.g. {key}=0.5 or {key}=128"
        )
    return v if v <= 1.0 else v / GREY_MAX


def full_scale(data: np.ndarray) -> float:
    """What probability 1 reads as in ``data`` (see the module docstring)."""
    if data.dtype == np.bool_ or data.size == 0:
        return 1.0
    top = float(np.max(data))
    if np.issubdtype(data.dtype, np.floating):
        return GREY_MAX if top > 1.0 + 1e-6 else 1.0
    if top <= 1:
        return 1.0  # a 0/1 mask (label file)
    return INT8_FULL if data.dtype == np.int8 else GREY_MAX


def threshold_on(data: np.ndarray, value: float, key: str = "threshold") -> float:
    """The user's threshold on the scale of ``data``."""
    return user_probability(value, key) * full_scale(data)


def block_mean(data: np.ndarray, b: int) -> np.ndarray:
    """Mean over ``b³`` blocks in float32; a partial block at the far edges is dropped.

    Averaged axis by axis (x, then y, then z) in float32, the order the original Ais's picking
    used, so thresholds on the binned volume land on the same voxels as its picks. Worked one
    z-slab of blocks at a time, so a memory-mapped volume is never read whole. ``b == 1``
    returns ``data`` as it is (no float32 copy).
    """
    b = int(b)
    if b < 1:
        raise ConfigError(f"bin={b} must be a whole number ≥ 1")
    if b == 1:
        return np.asarray(data)
    nz, ny, nx = (n // b for n in data.shape)
    if min(nz, ny, nx) == 0:
        raise ConfigError(f"bin={b} is larger than the volume {data.shape}; use a smaller bin")
    out = np.empty((nz, ny, nx), dtype=np.float32)
    for z in range(nz):
        slab = np.asarray(data[z * b : (z + 1) * b, : ny * b, : nx * b], dtype=np.float32)
        x_mean = slab.reshape(b, ny, b, nx, b).mean(4, dtype=np.float32)
        out[z] = x_mean.mean(2, dtype=np.float32).mean(0, dtype=np.float32)
    return out
